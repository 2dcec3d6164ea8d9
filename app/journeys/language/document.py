"""The journey file as a whole: its id and name, who enters (trigger), who leaves (exit_when,
goal), re-entry, the send policy, the steps, the messages they send and the file's tests.

The model depends on the installed channels, so `journey_model()` makes it for the channel
registry as it is, once per registry (a test may install a channel plugin)."""

from __future__ import annotations

import re
from functools import partial
from threading import Lock
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from app.durations import parse_cap
from app.journeys.language.content import (
    ChannelModels,
    channel_models,
    expected_forms,
    extended,
    message_model,
    send_forms,
)
from app.journeys.language.rules import EventRule, SegmentRule
from app.journeys.language.steps import STEPS, step_list, step_union
from app.journeys.language.values import (
    DURATION,
    JSON,
    OFFSET,
    Condition,
    Duration,
    JourneyId,
    MessageName,
    Offset,
    Text,
    by_key,
    non_empty,
    one_or_many,
    refused_unless,
)
from app.settings import parse_money
from app.yamlfiles import YamlModel
from app.yamlfiles.models import refusal
from app.yamlfiles.wording import allowed_hint
from channels import registry

KINDS = ("marketing", "transactional")  # of a journey's messages (docs/delivery.md)
ON_CAP = ("defer", "drop")  # what a capped message does
DESCRIPTION = (
    "One marketing journey: who enters (trigger), what happens to them (steps), when they "
    "leave (exit_when, goal). Check a file with `carillon journeys validate`."
)
CAP = "count/duration: at most `count` messages in any `duration`, e.g. 1/24h."
CAP_HINT = 'write count/duration, e.g. caps: {email: ["1/24h", "3/7d"]}'


def _cap(text: str) -> str:
    try:
        parse_cap(text)
    except ValueError as exc:
        raise PydanticCustomError("cap", str(exc), {"hint": CAP_HINT}) from None
    return text


Cap = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": r"^\s*0*[1-9][0-9]*\s*/\s*0*[1-9][0-9]*[smhd]\s*$"},
        examples=["1/24h", "3/7d"],
    ),
    AfterValidator(_cap),
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
    currency: (
        Annotated[
            str,
            Field(json_schema_extra={"pattern": "^[A-Z]{3}$"}),
            refused_unless(
                lambda code: isinstance(code, str) and re.fullmatch("[A-Z]{3}", code) is not None,
                "{name} must be an ISO 4217 code such as EUR or USD, not {value}",
            ),
        ]
        | None
    ) = Field(None, description="The currency of value, an ISO 4217 code such as EUR. Needs value.")

    @model_validator(mode="after")
    def _value_and_currency(self) -> Self:
        """Revenue is an amount in a currency: one without the other says nothing."""
        for has, lacks in (("value", "currency"), ("currency", "value")):
            if getattr(self, has) is not None and getattr(self, lacks) is None:
                raise refusal(
                    f"goal has a {has} but no {lacks}",
                    "e.g. value: event.properties.total, currency: EUR",
                    key=has,
                    on_key=True,
                )
        return self


class Cooldown(YamlModel):
    """Again, but not before `cooldown` has passed since the last entry."""

    cooldown: Duration = Field(description=f"e.g. 7d. {DURATION}")


class TestEvent(YamlModel):
    """A track event the person sends."""

    at: Offset = Field(description=OFFSET)
    event: Text = Field(description="The event name, e.g. Cart Abandoned.")
    properties: Annotated[dict[str, Any], JSON] | None = Field(
        None, description="The event's properties."
    )


class TestProfile(YamlModel):
    """The person (all optional)."""

    traits: Annotated[dict[str, Any], JSON] | None = Field(None, description="Profile traits.")
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
    names: Any = Annotated[
        Literal.__getitem__(tuple(channels)), BeforeValidator(partial(_channel, list(channels)))
    ]
    expected: Any = expected_forms(channels)
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
    caps: Any = Annotated[
        one_or_many(Annotated[Cap, Field(description=CAP)], list[Cap]),
        refused_unless(
            lambda rules: isinstance(rules, str | list),
            "{name} must be a list of caps, not {value}",
            CAP_HINT,
        ),
    ]
    fields: dict[str, Any] = {
        "id": (
            JourneyId,
            Field(
                description="The journey's stable id: lowercase letters, digits and dashes. "
                "Changing the file's content makes a new version of the same journey; changing "
                "the id makes another journey.",
                examples=["cart-abandonment"],
            ),
        ),
        "name": (Text, Field(description="A readable name, shown to the team.")),
        "trigger": (
            by_key("segment", SegmentRule, EventRule),
            Field(
                description="Who enters: people who send this event, if `when` holds for it; "
                "or people who enter or leave a segment (`segment:`, `on: enter|exit`)."
            ),
        ),
        "steps": (step_list(step), Field(description=STEPS)),
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
        "exit_when": (
            EventRule | None,
            Field(
                None,
                description="Who leaves early: a person on the journey who sends this event "
                "(if `when` holds) leaves at once; pending waits and unsent messages are "
                "cancelled.",
            ),
        ),
        "re_entry": (
            Annotated[
                by_key(None, Cooldown, Literal["never", "always"]), BeforeValidator(_re_entry)
            ],
            Field(
                "never",
                description="Whether someone may go through the journey again: never (once "
                "per person, ever), always (again each time the trigger fires, never twice at "
                "the same time) or after a cooldown. Default: never.",
            ),
        ),
        "goal": (Goal | None, Field(None)),
        "tests": (
            Annotated[
                list[scenario],  # type: ignore[valid-type]
                Field(min_length=1),
                non_empty("tests", "e.g. tests: [{name: ..., events: [...], expect: []}]"),
            ]
            | None,
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
            Annotated[
                int,
                refused_unless(
                    lambda n: isinstance(n, int) and not isinstance(n, bool),
                    "{name} must be a whole number, not {value}",
                    "e.g. priority: 10; the higher wins a person's last capped slot (default 0)",
                ),
            ],
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
            dict[names, caps] | None,
            Field(
                None,
                description="Frequency caps for this journey's messages, per channel, instead "
                "of CARILLON_FREQUENCY_CAPS; [] leaves the channel uncapped for this journey. "
                "Counted over every journey's messages to the person.",
                examples=[{next(iter(channels)): ["1/24h", "3/7d"]}],
            ),
        ),
    }
    budget: Any = Annotated[
        _budget_model(names),
        refused_unless(
            lambda value: isinstance(value, dict),
            "{name} must be a mapping of keys, not {value}",
            "e.g. budget: {amount: 20EUR, per: day}",
        ),
    ]
    fields["budget"] = (budget | None, Field(None))
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
    held: Any = (
        Annotated[
            by_key(None, fallback, Literal["skip", "wait"]),
            refused_unless(
                lambda value: isinstance(value, dict) or value in ("skip", "wait"),
                "{name} must be skip, wait or {fallback: <channel>}, not {value}",
                "e.g. on_budget: {fallback: email}",
            ),
        ]
        | None
    )
    amount: Any = (
        Annotated[
            str,
            Field(json_schema_extra={"pattern": MONEY}),
            refused_unless(
                lambda value: isinstance(value, str) and parse_money(value) is not None,
                "{name} must be a number above zero and a currency code, not {value}",
                "e.g. amount: 20EUR",
            ),
        ]
        | None
    )
    return create_model(
        "Budget",
        __base__=YamlModel,
        __doc__="What the journey's messages may spend per period, every channel together "
        "(counted as the ROI report counts cost), and what a message held by a budget does.",
        amount=(
            amount,
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
    if budget.amount is not None and budget.per is None:
        raise refusal(
            "a budget without a period: say per what it is spent",
            "add per: hour, per: day or per: week, e.g. budget: {amount: 20EUR, per: day}",
            key="amount",
            on_key=True,
        )
    if budget.per is not None and budget.amount is None:
        raise refusal(
            "budget.per needs an amount to spend", "e.g. amount: 20EUR", key="per", on_key=True
        )
    if budget.amount is None and budget.on_budget is None:
        raise ValueError("budget needs an amount and a period, or on_budget")
    return budget


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
    if journey.kind != "transactional":
        return journey
    for key, held in (("on_cap", "capped"), ("caps", "capped"), ("budget", "held by a budget")):
        if key in journey.model_fields_set:
            raise refusal(
                f"{key} has no effect: a transactional journey is never {held}",
                "remove it, or make the journey kind: marketing",
                key=key,
                on_key=True,
            )
    return journey


def _channel(names: list[str], value: Any) -> Any:
    """A channel of `names`: an unknown one is told with the closest name."""
    if isinstance(value, str) and value not in names:
        raise refusal(f"unknown channel {value!r}", allowed_hint(value, names))
    return value


def _re_entry(value: Any) -> Any:
    if isinstance(value, dict) or value in ("never", "always"):
        return value
    raise PydanticCustomError(
        "re_entry",
        "{name} must be never, always or a cooldown, not {value}",
        {"hint": "write re_entry: never, re_entry: always, or re_entry: {cooldown: 7d}"},
    )


def _validators(check: Any) -> Any:
    """`check` as the after-validator of a model made with `create_model`."""
    return {check.__name__: model_validator(mode="after")(check)}


def _scenario_starts(scenario: Any) -> Any:
    """Times count from a test's first event, so it is at 0s."""
    if scenario.events[0].at.lstrip("0")[:-1]:
        raise ValueError("the first event is at 0s: times count from the first event")
    return scenario
