"""The step kinds: a step is `exit` or a mapping with one kind (`wait: 1h`, `send: {...}`).

Each kind is a model named after its key (its `$defs` entry in the JSON Schema editors see).
Steps hold steps (a branch's arms, a split's arms, a wait_for's on_timeout) and a send holds
the installed channels' send models, so the kinds are made by `step_union` for a set of
channels, their step lists resolved once the union exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
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
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

from app.analytics.experiments import MIN_PER_ARM
from app.journeys.definition import WINNER_METRICS
from app.journeys.language.rules import EventRule
from app.journeys.language.values import (
    CONDITION,
    DURATION,
    Condition,
    Duration,
    Text,
    TimeOfDay,
    by_key,
    non_empty,
    refused_unless,
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


def _percent(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100:
        return value
    hint = "write a whole number without quotes, e.g. weight: 50"
    if isinstance(value, int) and not isinstance(value, bool):
        hint = "an arm's weight is its share of people in percent; the weights total 100"
    raise PydanticCustomError(
        "weight", "{name} must be a whole number from 1 to 100, not {value}", {"hint": hint}
    )


Weight = Annotated[int, Field(ge=1, le=100), BeforeValidator(_percent)]


def _single(value: Any) -> Any:
    """A trait is set to one value: a mapping or a list is a mistake, a date is not JSON."""
    if isinstance(value, dict | list):
        raise PydanticCustomError(
            "single",
            "{name} must be a single value, not {value}",
            {
                "hint": "set text, a number, true/false or null; give each trait its own key, "
                "e.g. address_city: Paris"
            },
        )
    if isinstance(value, date):
        raise PydanticCustomError(
            "json",
            "{name} must be text, a number, true/false, null, a list or a mapping, not {value}",
            {"hint": f'write it in quotes to make it text, e.g. "{value.isoformat()}"'},
        )
    return value


class WaitUntil(YamlModel):
    """Until the next such time of day, strictly after now, in the person's timezone (profile
    trait `timezone`, an IANA name such as Europe/Paris; else the CARILLON_DEFAULT_TIMEZONE
    setting, default UTC)."""

    mistakes = {"for": "for a duration write wait: 1h"}

    until: TimeOfDay = Field(description='A 24-hour time HH:MM, in quotes: "09:00".')


class WaitForRule(EventRule):
    """Pause until the person sends `event` (if `when` holds; here `event` is that event), at
    most `timeout`. When it comes, the trip goes on after this step; on timeout the
    `on_timeout` steps run first, then the steps after this one."""

    mistakes = {"on_timeout": "move on_timeout out of wait_for: line it up under wait_for"}

    timeout: Duration = Field(description="The longest wait, e.g. 2d. Required.")


class TraitUpdate(YamlModel):
    """Set profile traits, as if the shop had sent them now."""

    set: Annotated[
        dict[
            Text,
            Annotated[
                Annotated[str, template()] | int | float | bool | None, BeforeValidator(_single)
            ],
        ],
        Field(min_length=1),
    ] = Field(
        description="trait: value. Text values are Jinja2 templates; numbers, true/false and "
        "null are stored as they are. No lists or mappings."
    )


class Holdout(YamlModel):
    """The control group: `weight` % of people get no message from this journey for the rest
    of the trip, but their conversions are counted. No steps."""

    mistakes = {
        "steps": "a holdout arm has no steps: the people in it receive no message from this "
        "journey; remove the steps, or remove holdout: true to make it an ordinary arm",
        "name": f"the holdout arm is always named {HOLDOUT}",
    }

    holdout: Literal[True] = Field(description="Marks the holdout arm.")
    weight: Weight = Field(description=WEIGHT)


class Winner(YamlModel):
    """Decide the test automatically: once every arm holds `min_per_arm` people and the best
    arm (never the holdout) beats the others on `metric` with a p-value under `at`, new
    entrants all take that arm. The decision is recorded in the journey's history."""

    metric: Annotated[Literal["conversion", "revenue"], BeforeValidator(_metric)] = Field(
        description="conversion: the goal's rate; revenue: the goal's value per person (the "
        "goal needs value: and currency:)."
    )
    at: Annotated[
        Annotated[str, Field(pattern=THRESHOLD_PATTERN)]
        | Annotated[float, Field(gt=0, lt=1, strict=True)],
        refused_unless(
            lambda value: threshold(value) is not None,
            '{name} must be a p-value threshold such as "p<0.05", not {value}',
            'write "p<" and a number between 0 and 1, in quotes: at: "p<0.05" (or 0.01 to be '
            "stricter)",
        ),
    ] = Field(description='The p-value threshold, "p<0.05" or 0.05.', examples=["p<0.05"])
    min_per_arm: Annotated[
        int,
        Field(ge=1, strict=True),
        refused_unless(
            lambda n: isinstance(n, int) and not isinstance(n, bool) and n >= 1,
            "{name} must be a whole number of at least 1, not {value}",
            f"the default is {MIN_PER_ARM}: smaller samples call noise a winner",
        ),
    ] = Field(MIN_PER_ARM, description="People every arm needs before any call.")


def _metric(value: Any) -> Any:
    if value in WINNER_METRICS:
        return value
    raise refusal(
        f"unknown experiment metric {describe(value)}",
        allowed_hint(str(value), list(WINNER_METRICS)),
    )


def _arm_name(name: str) -> str:
    """Arm names are stored (VARCHAR(50)) and `holdout` means: sent nothing."""
    if len(name) > MAX_ARM_NAME_LENGTH:
        raise refusal(
            f"arm name is {len(name)} characters long; the most is {MAX_ARM_NAME_LENGTH}",
            "use a short label such as A, B or discount_10",
        )
    if name == HOLDOUT:
        raise refusal(
            f"the name {HOLDOUT!r} is kept for the holdout arm, whose people receive nothing",
            f"choose another name, or write {HOLDOUT}: true (without steps) for a holdout",
        )
    return name


def _kind(key: str, arms: bool = False) -> ConfigDict:
    """The config of a step kind's model: its key is described by the kind's docstring, and
    with `arms` the key is a list of two kinds of arms (when / else, weighted / holdout), of
    which the first must appear and the second at most once."""

    def extra(schema: dict[str, Any], model: type) -> None:
        value = schema["properties"][key]
        value.setdefault("description", schema.get("description"))
        if arms:
            second, first = value["items"]["oneOf"]  # by_key: the other arm, then the usual
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
    return f"{main[0]} step" if len(main) == 1 else None


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


def step_list(step: Any) -> Any:
    """A list of steps (`steps:`, an arm's, `on_timeout:`), at least one."""
    return Annotated[
        list[step],  # type: ignore[valid-type]
        Field(min_length=1, description=STEPS),
        BeforeValidator(_some_steps),
    ]


def _some_steps(value: Any) -> Any:
    if isinstance(value, list) and value:
        return value
    raise PydanticCustomError(
        "steps",
        "{name} must be a non-empty list of steps, not {value}",
        {"hint": "start each step on its own line with '- ', e.g. - wait: 1h"},
    )


def step_union(sends: Any) -> Any:
    """The union of every step kind, `send` being the union of the channels' send forms;
    it is named `step` in the JSON Schema."""

    # Lowercase class names: each is the step's key and its name in the JSON Schema.
    class wait(YamlModel):  # noqa: N801
        """Pause the trip: for a duration (wait: 1h) or until a time of day
        (wait: {until: "09:00"})."""

        model_config = _kind("wait")

        wait: by_key(None, WaitUntil, Duration) = Field(  # type: ignore[valid-type]
            description=f"How long to pause. {DURATION}"
        )

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

        mistakes = {
            "when": "an else arm has no condition: it runs when no other arm's holds",
            "steps": "write the else arm's steps under else itself: - else: [steps]",
        }

        else_: Steps = Field(alias="else")

    class branch(YamlModel):  # noqa: N801
        """The first arm whose `when` holds runs, else the `else` arm; with none, the trip
        goes on after the branch. After the arm, it goes on after the branch."""

        model_config = _kind("branch", arms=True)

        branch: Annotated[
            Arms,
            non_empty(
                "arms",
                "write each arm as - when: <condition> with its steps:, and last - else: [steps]",
            ),
        ] = Field(min_length=1)

        @model_validator(mode="after")
        def _one_else_last_and_a_condition(self) -> Self:
            elses = [i for i, arm in enumerate(self.branch) if isinstance(arm, ElseArm)]
            if elses and any(isinstance(arm, WhenArm) for arm in self.branch[elses[0] :]):
                raise refusal(
                    "else must be the last arm of a branch",
                    "move it to the end: the arms after else could never run",
                    key=["branch", elses[0]],
                )
            if len(elses) > 1:
                raise refusal(
                    f"a branch has at most one else (arm {elses[0]} is one already)",
                    "merge the else arms into one",
                    key=["branch", elses[1]],
                )
            if len(elses) == len(self.branch):
                raise refusal(
                    "a branch needs at least one arm with when",
                    "steps that always run need no branch: write them in the list directly",
                    key=["branch"],
                    on_key=True,
                )
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

        split: Annotated[
            SplitArms,
            non_empty(
                "arms",
                "write each arm as - weight: 50 with its steps:, or - holdout: true with a "
                "weight; e.g. two arms of weight 50, or an arm of weight 90 and a holdout of "
                "weight 10",
                least=2,
            ),
        ] = Field(min_length=2)
        winner: Winner | None = Field(
            None,
            description="When to stop the test and send every new entrant down the winning "
            "arm. Written beside split, lined up under it.",
        )

        @model_validator(mode="after")
        def _one_holdout_and_names_of_their_own(self) -> Self:
            holdouts = [i for i, arm in enumerate(self.split) if isinstance(arm, Holdout)]
            if len(holdouts) > 1:
                raise refusal(
                    f"a split has at most one holdout (arm {holdouts[0]} is one already)",
                    "merge them into one holdout arm with the sum of their weights",
                    key=["split", holdouts[1]],
                )
            if len(holdouts) == len(self.split):
                raise ValueError("a split needs an arm with steps")
            named: dict[str, int] = {}  # arm name → index of the arm
            letters = arm_names()
            for index, arm in enumerate(self.split):
                if isinstance(arm, Holdout):
                    continue
                default = next(letters)  # a named arm takes its letter too, as compiled
                name = arm.name or default
                if name in named:
                    raise refusal(
                        f"arm name {name!r} is used twice in this split "
                        f"(arm {named[name]} has it too)",
                        "give each arm its own name, or no name to get A, B, C… in order",
                        key=["split", index, "name"] if arm.name else ["split", index],
                    )
                named[name] = index
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
    # Tagged apart from their keys: a tag in an error's path is no key of the document.
    tagged = [
        Annotated[EXIT, Tag("exit")],
        *(Annotated[k, Tag(f"{k.__name__} step")] for k in kinds),
    ]
    step: Any = TypeAliasType(  # type: ignore[misc]
        "step",
        Annotated[
            Union.__getitem__(tuple(tagged)), Discriminator(_step_kind), BeforeValidator(one_kind)
        ],
    )
    names = {
        "Steps": step_list(step),
        "Arms": list[by_key("else", ElseArm, WhenArm)],  # type: ignore[misc]
        "SplitArms": list[by_key("holdout", Holdout, SplitArm)],  # type: ignore[misc]
        "ArmName": Annotated[
            Text,
            Field(json_schema_extra={"maxLength": MAX_ARM_NAME_LENGTH, "not": {"const": HOLDOUT}}),
            AfterValidator(_arm_name),
        ],
        "Send": sends,
    }
    for model in (WhenArm, ElseArm, SplitArm, *kinds):
        model.model_rebuild(_types_namespace={**globals(), **locals(), **names})
    return step
