"""The journey file as a whole: its id and name, who enters (trigger), who leaves (exit_when,
goal), re-entry, the send policy, the steps, the messages they send and the file's tests.

The model depends on the installed channels, so `journey_model()` makes it for the channel
registry as it is, once per registry (a test may install a channel plugin)."""

from __future__ import annotations

from threading import Lock
from typing import Annotated, Any, Literal, Union

from pydantic import Field, create_model, model_validator

from app.journeys.language.content import (
    ChannelModels,
    channel_models,
    extended,
    message_model,
    send_forms,
)
from app.journeys.language.rules import EventRule, SegmentRule
from app.journeys.language.steps import step_union
from app.journeys.language.values import (
    DURATION,
    ID_PATTERN,
    MAX_ID_LENGTH,
    OFFSET,
    Condition,
    Duration,
    MessageName,
    Offset,
    Text,
)
from app.settings import parse_money
from app.yamlfiles import YamlModel
from channels import registry

KINDS = ("marketing", "transactional")  # of a journey's messages (docs/delivery.md)
ON_CAP = ("defer", "drop")  # what a capped message does
DESCRIPTION = (
    "One marketing journey: who enters (trigger), what happens to them (steps), when they "
    "leave (exit_when, goal). Check a file with `carillon journeys validate`."
)
CAP = "count/duration: at most `count` messages in any `duration`, e.g. 1/24h."
Cap = Annotated[
    str,
    Field(pattern=r"^\s*0*[1-9][0-9]*\s*/\s*0*[1-9][0-9]*[smhd]\s*$", examples=["1/24h", "3/7d"]),
]


class Goal(EventRule):
    """What counts as a conversion. When the goal event arrives (and `when` holds), the
    conversion is recorded on the trip with its split arm and a running trip ends at once as
    converted. A trip that already completed still counts the conversion if the event comes
    within `within` of entry."""

    within: Duration | None = Field(
        None,
        description="How long after entering a conversion still counts, e.g. 7d. Without it, "
        f"only while the trip is running. {DURATION}",
    )
    value: Condition | None = Field(
        None,
        description="The conversion's revenue: a CEL expression giving a number, e.g. "
        "event.properties.total. Credited to the trip's last message within its channel's "
        "attribution window. Needs currency.",
    )
    currency: Annotated[str, Field(pattern="^[A-Z]{3}$")] | None = Field(
        None, description="The currency of value, an ISO 4217 code such as EUR. Needs value."
    )


class Cooldown(YamlModel):
    """Again, but not before `cooldown` has passed since the last entry."""

    cooldown: Duration = Field(description=f"e.g. 7d. {DURATION}")


class TestEvent(YamlModel):
    """A track event the person sends."""

    at: Offset = Field(description=OFFSET)
    event: Text = Field(description="The event name, e.g. Cart Abandoned.")
    properties: dict[str, Any] | None = Field(None, description="The event's properties.")


class TestProfile(YamlModel):
    """The person (all optional)."""

    traits: dict[str, Any] | None = Field(None, description="Profile traits.")
    email: Text | None = Field(None, description="E-mail address.")
    phone: Text | None = Field(None, description='Phone number in quotes, e.g. "+33612345678".')


def _first_event(schema: dict[str, Any]) -> None:
    """The first event is an event (as every other) at zero."""
    at_zero = {"description": "The first event is at 0s.", "pattern": "^0+[smhd]$"}
    schema["prefixItems"] = [{"allOf": [dict(schema["items"]), {"properties": {"at": at_zero}}]}]


class _Built:
    """The model made for one state of the channel registry."""

    def __init__(self) -> None:
        self.lock = Lock()
        self.specs: Any = None
        self.model: type[YamlModel] | None = None


_BUILT = _Built()


def journey_model() -> type[YamlModel]:
    """The model of a journey file for the installed channels."""
    specs = registry.specs()
    with _BUILT.lock:
        if _BUILT.specs is not specs or _BUILT.model is None:
            _BUILT.model, _BUILT.specs = (
                _journey({name: channel_models(spec) for name, spec in specs.items()}),
                specs,
            )
        return _BUILT.model


def _journey(channels: dict[str, ChannelModels]) -> type[YamlModel]:
    names: Any = Literal.__getitem__(tuple(channels))
    expected: Any = Union.__getitem__(tuple(m.expected for m in channels.values()))
    message: Any = message_model(channels)
    scenario: Any = create_model(
        "Scenario",
        __base__=YamlModel,
        __doc__="A test case: a person, the events they send, and the messages expected.",
        name=(Text, Field(description="What the test checks, e.g. no reminder after an order.")),
        profile=(TestProfile | None, Field(None)),
        events=(
            Annotated[list[TestEvent], Field(min_length=1, json_schema_extra=_first_event)],
            Field(description="The events, in time order; the first is at 0s."),
        ),
        expect=(
            list[expected],
            Field(description="The messages expected, in any order. [] means: nothing sent."),
        ),
        __validators__=_validators(_scenario_starts),
    )
    step = step_union(send_forms(channels))
    fields: dict[str, Any] = {
        "id": (
            Annotated[str, Field(pattern=f"^{ID_PATTERN}$", max_length=MAX_ID_LENGTH)],
            Field(
                description="The journey's stable id: lowercase letters, digits and dashes. "
                "Changing the file's content makes a new version of the same journey; changing "
                "the id makes another journey.",
                examples=["cart-abandonment"],
            ),
        ),
        "name": (Text, Field(description="A readable name, shown to the team.")),
        "description": (
            Text | None,
            Field(None, description="What the journey is for, in a sentence or two."),
        ),
        "enabled": (
            bool,
            Field(
                True,
                description="false stops new people from entering; trips already running "
                "finish. Default: true.",
            ),
        ),
        "trigger": (
            EventRule | SegmentRule,
            Field(
                description="Who enters: people who send this event, if `when` holds for it; "
                "or people who enter or leave a segment (`segment:`, `on: enter|exit`)."
            ),
        ),
        "exit_when": (
            EventRule | None,
            Field(
                None,
                description="Who leaves early: a person on the journey who sends this event "
                "(if `when` holds) leaves at once; pending waits and unsent messages are "
                "cancelled.",
            ),
        ),
        "goal": (Goal | None, Field(None)),
        "re_entry": (
            Literal["never", "always"] | Cooldown,
            Field(
                "never",
                description="Whether someone may go through the journey again: never (once "
                "per person, ever), always (again each time the trigger fires, never twice at "
                "the same time) or after a cooldown. Default: never.",
            ),
        ),
        "steps": (Annotated[list[step], Field(min_length=1)], Field(description=_STEPS)),  # type: ignore[valid-type]
        "tests": (
            Annotated[list[scenario], Field(min_length=1)] | None,
            Field(
                None,
                description="Scenarios that `carillon journeys test` plays against this "
                "journey on a virtual clock.",
            ),
        ),
        "messages": (
            Annotated[dict[MessageName, message], Field(min_length=1)] | None,
            Field(
                None,
                description="Messages that send steps use by name (`send: {channel: ..., "
                "message: welcome}`): one theme with a variant per channel, and per locale "
                "under `locales`.",
            ),
        ),
        "kind": (
            Literal.__getitem__(KINDS),
            Field(
                "marketing",
                description="marketing (default) or transactional: messages the person asked "
                "for (receipts, password resets), exempt from quiet hours and frequency caps.",
            ),
        ),
        "priority": (
            int,
            Field(
                0,
                description="A whole number, default 0. When messages compete for a person's "
                "last capped slot on a channel, the higher-priority journey's message gets it.",
            ),
        ),
        "on_cap": (
            Literal.__getitem__(ON_CAP),
            Field(
                "defer",
                description="What a capped message does: defer (default), sent once the cap "
                "allows; or drop, not sent at all.",
            ),
        ),
        "caps": (
            dict[names, Annotated[Cap, Field(description=CAP)] | list[Cap]] | None,
            Field(
                None,
                description="Frequency caps for this journey's messages, per channel, instead "
                "of CARILLON_FREQUENCY_CAPS; [] leaves the channel uncapped for this journey. "
                "Counted over every journey's messages to the person.",
                examples=[{next(iter(channels)): ["1/24h", "3/7d"]}],
            ),
        ),
    }
    fields["budget"] = (_budget_model(names) | None, Field(None))
    return create_model(
        "Journey",
        __base__=extended(_TRANSACTIONAL_UNCAPPED),
        __doc__=DESCRIPTION,
        __validators__=_validators(_transactional_uncapped),
        **fields,
    )


def _budget_model(names: Any) -> Any:
    fallback = create_model(
        "Fallback",
        __base__=YamlModel,
        __doc__="Send the message on another channel instead, if the person may get it there "
        "and the message has a variant for it.",
        fallback=(names, Field(description="The channel, e.g. email.")),
    )
    period: Any = Literal["hour", "day", "week"] | None
    held: Any = Literal["skip", "wait"] | fallback | None
    return create_model(
        "Budget",
        __base__=YamlModel,
        __doc__="What the journey's messages may spend per period, every channel together "
        "(counted as the ROI report counts cost), and what a message held by a budget does.",
        amount=(
            Annotated[str, Field(pattern=MONEY)] | None,
            Field(None, description="An amount in CARILLON_COST_CURRENCY, e.g. 20EUR."),
        ),
        per=(
            period,
            Field(None, description="The period: hour, day or week, from 00:00 UTC."),
        ),
        on_budget=(
            held,
            Field(
                None,
                description="When a budget (this one or the channel's) holds a message: skip "
                "(dropped), wait (for the next period) or {fallback: <channel>}. Default: "
                "CARILLON_ON_BUDGET.",
            ),
        ),
        __validators__=_validators(_budget_whole),
    )


MONEY = r"^\s*[0-9]+(\.[0-9]+)?\s*[A-Z]{3}\s*$"


def _budget_whole(budget: Any) -> Any:
    """An amount is spent per period; a budget says something."""
    if (budget.amount is None) != (budget.per is None):
        raise ValueError("a budget needs both amount and per (a budget without a period)")
    if budget.amount is not None and parse_money(budget.amount) is None:
        raise ValueError("budget.amount must be a number above zero and a currency code")
    if budget.amount is None and budget.on_budget is None:
        raise ValueError("budget needs an amount and a period, or on_budget")
    return budget


_STEPS = (
    "The steps, run in order. A step is `exit` or a mapping with one step kind: wait, "
    "wait_for, branch, split, update_profile, send."
)
# A transactional journey is never capped: caps or on_cap there is a mistake.
_TRANSACTIONAL_UNCAPPED = {
    "if": {"required": ["kind"], "properties": {"kind": {"const": "transactional"}}},
    "then": {
        "not": {
            "anyOf": [{"required": ["caps"]}, {"required": ["on_cap"]}, {"required": ["budget"]}]
        }
    },
}


def _transactional_uncapped(journey: Any) -> Any:
    fields = journey.model_fields_set
    if journey.kind == "transactional" and ({"caps", "on_cap", "budget"} & fields):
        raise ValueError(
            "a transactional journey is never capped or held by a budget: remove caps, on_cap "
            "and budget"
        )
    return journey


def _validators(check: Any) -> Any:
    """`check` as the after-validator of a model made with `create_model`."""
    return {check.__name__: model_validator(mode="after")(check)}


def _scenario_starts(scenario: Any) -> Any:
    """Times count from a test's first event, so it is at 0s."""
    if scenario.events[0].at.lstrip("0")[:-1]:
        raise ValueError("the first event is at 0s: times count from the first event")
    return scenario
