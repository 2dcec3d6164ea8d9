"""The step kinds: a step is `exit` or a mapping with one kind (`wait: 1h`, `send: {...}`).

Each kind is a model named after its key (its `$defs` entry in the JSON Schema editors see).
Steps hold steps (a branch's arms, a split's arms, a wait_for's on_timeout) and a send holds
the installed channels' send models, so the kinds are made by `step_union` for a set of
channels, their step lists resolved once the union exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import count, product
from string import ascii_uppercase
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, Union

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)
from typing_extensions import TypeAliasType

from app.analytics.experiments import MIN_PER_ARM
from app.journeys.language.rules import EventRule
from app.journeys.language.values import (
    CONDITION,
    DURATION,
    Condition,
    Duration,
    Text,
    TimeOfDay,
    template,
)
from app.yamlfiles import YamlModel
from app.yamlfiles.models import refusal
from app.yamlfiles.wording import allowed_hint, describe

if TYPE_CHECKING:  # at run time, given by `step_union` once the step union exists
    Steps = list[Any]
    Arms = list[Any]
    SplitArms = list[Any]
    ArmName = str
    Send = Any

EXIT = Annotated[
    Literal["exit"],
    WithJsonSchema(
        {"const": "exit", "description": "End the trip here (steps after it could never run)."}
    ),
]
STEPS = (
    "The steps, run in order. A step is `exit` or a mapping with one step kind: wait, "
    "wait_for, branch, split, update_profile, send."
)
MAX_ARM_NAME_LENGTH = 50  # journey_instances.arm and deliveries.arm are VARCHAR(50)
HOLDOUT = "holdout"  # the holdout arm's name: the runtime sends nothing to trips in that arm
THRESHOLD_PATTERN = r"^\s*p\s*<\s*0?\.[0-9]*[1-9][0-9]*\s*$"  # "p<0.05", in the JSON Schema too
_THRESHOLD = re.compile(r"\s*p\s*<\s*(0?\.[0-9]+)\s*")  # the same texts as the pattern


def threshold(value: Any) -> float | None:
    """`"p<0.05"` or `0.05` as 0.05; None unless strictly between 0 and 1."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and (match := _THRESHOLD.fullmatch(value)):
        number = float(match.group(1))
    return number if number is not None and 0 < number < 1 else None


def arm_names() -> Iterator[str]:
    """A, B, … Z, AA, AB, …: the default names of a split's arms, in order."""
    for size in count(1):
        for letters in product(ascii_uppercase, repeat=size):
            yield "".join(letters)


WEIGHT = "The arm's share of people, in percent; a split's weights total 100."
Weight = Annotated[int, Field(ge=1, le=100)]


class WaitUntil(YamlModel):
    """Until the next such time of day, strictly after now, in the person's timezone (profile
    trait `timezone`, an IANA name such as Europe/Paris; else the CARILLON_DEFAULT_TIMEZONE
    setting, default UTC)."""

    until: TimeOfDay = Field(description='A 24-hour time HH:MM, in quotes: "09:00".')


class WaitForRule(EventRule):
    """Pause until the person sends `event` (if `when` holds; here `event` is that event), at
    most `timeout`. When it comes, the trip goes on after this step; on timeout the
    `on_timeout` steps run first, then the steps after this one."""

    timeout: Duration = Field(description="The longest wait, e.g. 2d. Required.")


class TraitUpdate(YamlModel):
    """Set profile traits, as if the shop had sent them now."""

    set: Annotated[
        dict[Text, Annotated[str, template()] | int | float | bool | None], Field(min_length=1)
    ] = Field(
        description="trait: value. Text values are Jinja2 templates; numbers, true/false and "
        "null are stored as they are. No lists or mappings."
    )


class Holdout(YamlModel):
    """The control group: `weight` % of people get no message from this journey for the rest
    of the trip, but their conversions are counted. No steps."""

    holdout: Literal[True] = Field(description="Marks the holdout arm.")
    weight: Weight = Field(description=WEIGHT)


class Winner(YamlModel):
    """Decide the test automatically: once every arm holds `min_per_arm` people and the best
    arm (never the holdout) beats the others on `metric` with a p-value under `at`, new
    entrants all take that arm. The decision is recorded in the journey's history."""

    metric: Literal["conversion", "revenue"] = Field(
        description="conversion: the goal's rate; revenue: the goal's value per person (the "
        "goal needs value: and currency:)."
    )
    at: (
        Annotated[str, Field(pattern=THRESHOLD_PATTERN)]
        | Annotated[float, Field(gt=0, lt=1, strict=True)]
    ) = Field(description='The p-value threshold, "p<0.05" or 0.05.', examples=["p<0.05"])
    min_per_arm: Annotated[int, Field(ge=1, strict=True)] = Field(
        MIN_PER_ARM, description="People every arm needs before any call."
    )


def _not_holdout(name: str) -> str:
    if name == HOLDOUT:
        raise ValueError(f"the name {HOLDOUT!r} is kept for the holdout arm")
    return name


def _kind(key: str, arms: bool = False) -> ConfigDict:
    """The config of a step kind's model: its key is described by the kind's docstring, and
    with `arms` the key is a list of two kinds of arms (when / else, weighted / holdout), of
    which the first must appear and the second at most once."""

    def extra(schema: dict[str, Any], model: type) -> None:
        value = schema["properties"][key]
        value.setdefault("description", schema.get("description"))
        if arms:
            first, second = value["items"]["anyOf"]
            value["allOf"] = [
                {"contains": dict(first)},
                {"contains": dict(second), "minContains": 0, "maxContains": 1},
            ]

    return ConfigDict(**YamlModel.model_config, json_schema_extra=extra)


KINDS = ("wait", "wait_for", "branch", "split", "update_profile", "send")
BARE = ("exit",)  # the steps written as a word alone
# Keys written beside a step kind in the same list item → the one kind they go with.
BESIDE = {"on_timeout": "wait_for", "winner": "split"}


def _step_kind(value: Any) -> str | None:
    """The step kind `value` is written as (`one_kind` has refused any other shape)."""
    if isinstance(value, str):
        return value
    main = [key for key in value if key not in BESIDE] if isinstance(value, dict) else []
    return str(main[0]) if len(main) == 1 else None


def one_kind(value: Any) -> Any:
    """A step is a bare word (`exit`) or a mapping with exactly one known kind, and the keys
    that go beside that kind; anything else is one error, in the terms the marketer wrote
    (not one per kind it is not)."""
    kinds = [*KINDS, *BARE]
    if isinstance(value, str) and value not in BARE:
        raise refusal(f"unknown step {value!r}", allowed_hint(value, kinds))
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or not value:
        raise refusal(
            f"a step must be one of {', '.join(kinds)}, not {describe(value)}", "e.g. - wait: 1h"
        )
    main = [key for key in value if key not in BESIDE]
    if len(main) > 1:
        hint = "put each step in its own list item starting with '- '"
        if any(key in KINDS and value[key] is None for key in value):
            hint = "indent the options under the step kind, two spaces further than it"
        raise refusal(f"a step has exactly one kind, found {', '.join(map(str, value))}", hint)
    for key, owner in BESIDE.items():
        if key in value and main != [owner]:
            raise refusal(
                f"{key} goes with {owner}, not with {main[0]}"
                if main
                else f"{key} is not a step: it belongs beside a {owner}, in the same list item",
                f"write {key} lined up under its {owner}, with no '- ' before it",
                key=key,
                on_key=True,
            )
    (kind,) = main
    if kind not in KINDS:
        hint = (
            f"write '- {kind}' alone, without ':'"
            if kind in BARE
            else allowed_hint(str(kind), kinds)
        )
        raise refusal(f"unknown step kind {str(kind)!r}", hint, key=str(kind), on_key=True)
    return value


def step_union(sends: Any) -> Any:
    """The union of every step kind, `send` being the union of the channels' send forms;
    it is named `step` in the JSON Schema."""

    # Lowercase class names: each is the step's key and its name in the JSON Schema.
    class wait(YamlModel):  # noqa: N801
        """Pause the trip: for a duration (wait: 1h) or until a time of day
        (wait: {until: "09:00"})."""

        model_config = _kind("wait")

        wait: Duration | WaitUntil = Field(description=f"How long to pause. {DURATION}")

    class wait_for(YamlModel):  # noqa: N801
        """Pause until the person sends an event, at most `timeout`."""

        model_config = _kind("wait_for")

        wait_for: WaitForRule
        on_timeout: Steps | None = Field(
            None,
            description="Steps run when the wait_for times out, before the steps after it. "
            "Written beside wait_for, lined up under it.",
        )

    class WhenArm(YamlModel):
        """Runs `steps` if `when` holds (and no earlier arm's did)."""

        when: Condition = Field(description=CONDITION)
        steps: Steps

    class ElseArm(YamlModel):
        """Runs when no other arm's condition holds. At most one, and last."""

        else_: Steps = Field(alias="else")

    class branch(YamlModel):  # noqa: N801
        """The first arm whose `when` holds runs, else the `else` arm; with none, the trip
        goes on after the branch. After the arm, it goes on after the branch."""

        model_config = _kind("branch", arms=True)

        branch: Arms = Field(min_length=1)

        @model_validator(mode="after")
        def _one_else_and_a_condition(self) -> Self:
            if sum(isinstance(arm, ElseArm) for arm in self.branch) > 1:
                raise ValueError("a branch has at most one else")
            if not any(isinstance(arm, WhenArm) for arm in self.branch):
                raise ValueError("a branch needs at least one arm with when")
            return self

    class SplitArm(YamlModel):
        """An arm of the test: `weight` % of people run its `steps`."""

        weight: Weight = Field(description=WEIGHT)
        steps: Steps
        name: ArmName | None = Field(
            None, description="The arm's name in reports (default A, B, C… in order)."
        )

    class split(YamlModel):  # noqa: N801
        """An A/B/n test: each person goes down one weighted arm, chosen from the profile id
        and journey version only, and recorded on the trip and its deliveries. At most one
        split per journey; after the arm the trip goes on after it."""

        model_config = _kind("split", arms=True)

        split: SplitArms = Field(min_length=2)
        winner: Winner | None = Field(
            None,
            description="When to stop the test and send every new entrant down the winning "
            "arm. Written beside split, lined up under it.",
        )

        @model_validator(mode="after")
        def _one_holdout(self) -> Self:
            if sum(isinstance(arm, Holdout) for arm in self.split) > 1:
                raise ValueError("a split has at most one holdout")
            if all(isinstance(arm, Holdout) for arm in self.split):
                raise ValueError("a split needs an arm with steps")
            return self

    class update_profile(YamlModel):  # noqa: N801
        """Set profile traits, as if the shop had sent them now."""

        model_config = _kind("update_profile")

        update_profile: TraitUpdate

    class send(YamlModel):  # noqa: N801
        """Send one message; the content is rendered at send time, and consent, suppression,
        caps and quiet hours are checked then."""

        model_config = _kind("send")

        send: Send

    kinds = (wait, wait_for, branch, split, update_profile, send)
    tagged = [Annotated[EXIT, Tag("exit")], *(Annotated[k, Tag(k.__name__)] for k in kinds)]
    step: Any = TypeAliasType(  # type: ignore[misc]
        "step",
        Annotated[
            Union.__getitem__(tuple(tagged)), Discriminator(_step_kind), BeforeValidator(one_kind)
        ],
    )
    names = {
        "Steps": Annotated[list[step], Field(min_length=1, description=STEPS)],  # type: ignore[valid-type]
        "Arms": list[WhenArm | ElseArm],
        "SplitArms": list[SplitArm | Holdout],
        "ArmName": Annotated[
            Text,
            Field(max_length=MAX_ARM_NAME_LENGTH, json_schema_extra={"not": {"const": HOLDOUT}}),
            AfterValidator(_not_holdout),
        ],
        "Send": sends,
    }
    for model in (WhenArm, ElseArm, SplitArm, *kinds):
        model.model_rebuild(_types_namespace={**globals(), **locals(), **names})
    return step
