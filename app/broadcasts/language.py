"""The broadcast file as the marketer writes it: pydantic models that validate one file
through `app.yamlfiles` (every mistake as `file:line:column`) and give editors the JSON
Schema. `messages:` is the journey language's own, so a message reads the same in both.

What one file cannot know (does the segment exist, is the time still to come, is the rate
within the provider's limit) is checked by `loader` against the running system.
"""

from __future__ import annotations

import re
import threading
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from app.durations import parse_duration
from app.journeys.language.content import channel_models, message_model
from app.journeys.language.values import MessageName, Text
from app.segments.language import Channel, Identifier
from app.yamlfiles import YamlModel
from channels import registry

# `journey_id` of its deliveries is `broadcast:<id>`, in a VARCHAR(100).
MAX_ID_LENGTH = 80
AT_HINT = (
    "write a date and a time: 2027-11-26T09:00 (each person's own local time) or "
    "2027-11-26T09:00+01:00 (one instant for everybody)"
)
RATE_HINT = "write a count per period: 200/s, 5000/m or 100000/h"
_RATE = re.compile(r"([0-9]+)/([0-9]*[smhd])")


def _broadcast_id(value: str) -> str:
    if len(value) > MAX_ID_LENGTH:
        raise PydanticCustomError(
            "identifier", f"{{name}} must be at most {MAX_ID_LENGTH} characters"
        )
    return value


def written_time(value: Any) -> Any:
    """YAML reads `2027-11-26 09:00:00` as a timestamp: keep what was written, as text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def moment(value: str) -> datetime:
    """The time as written: naive (each person's local time) or with an offset."""
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a date and time") from None


def _at(value: str) -> str:
    try:
        moment(value)
    except ValueError as exc:
        raise PydanticCustomError(
            "at", "{name}: {problem}", {"hint": AT_HINT, "problem": str(exc)}
        ) from None
    if len(value.strip()) <= len("2027-11-26"):  # a date alone
        raise PydanticCustomError("at", "{name} needs a time of day", {"hint": AT_HINT})
    return value


def per_second(value: str) -> float:
    """`200/s` → 200.0; ValueError when it is not a rate or is zero."""
    match = _RATE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a rate")
    count, period = int(match[1]), match[2]
    if count == 0:
        raise ValueError("a rate of 0 sends nothing")
    seconds = parse_duration(period if period[:1].isdigit() else f"1{period}")
    return count / seconds.total_seconds()


def _rate(value: str) -> str:
    try:
        per_second(value)
    except ValueError as exc:
        raise PydanticCustomError(
            "rate", "{name}: {problem}", {"hint": RATE_HINT, "problem": str(exc)}
        ) from None
    return value


BroadcastId = Annotated[Identifier, AfterValidator(_broadcast_id)]
At = Annotated[str, BeforeValidator(written_time), AfterValidator(_at)]
Rate = Annotated[str, AfterValidator(_rate)]


class Audience(YamlModel):
    """Who gets it: the members of a segment (or lifecycle stage), or everyone with consent
    for a channel. Taken once, when the broadcast starts."""

    segment: Identifier | None = Field(
        None, description="A segment or lifecycle stage id (segments/), e.g. active."
    )
    channel_consent: Channel | None = Field(
        None, description="Everyone who may receive marketing on this channel, e.g. email."
    )

    @model_validator(mode="after")
    def _one(self) -> Audience:
        if (self.segment is None) == (self.channel_consent is None):
            raise PydanticCustomError(
                "audience",
                "{name} needs exactly one of segment or channel_consent",
                {"hint": "audience: {segment: active} or audience: {channel_consent: email}"},
            )
        return self


class Send(YamlModel):
    """What is sent: a message of `messages:` on one channel, or a whole journey (each person
    starts a trip, its splits are A/B tests like any other)."""

    channel: Channel | None = Field(None, description="The channel to send on, e.g. email.")
    message: MessageName | None = Field(None, description="The name of an entry of `messages:`.")
    journey: Identifier | None = Field(
        None, description="A journey's id (journeys/): each person starts a trip of it."
    )

    @model_validator(mode="after")
    def _one(self) -> Send:
        if self.journey is not None and (self.channel or self.message):
            raise PydanticCustomError(
                "send",
                "{name} is either a journey or a message, not both",
                {"hint": "send: {journey: winback} or send: {channel: email, message: news}"},
            )
        if self.journey is None and not (self.channel and self.message):
            raise PydanticCustomError(
                "send",
                "{name} needs channel and message, or journey",
                {"hint": "send: {channel: email, message: news} or send: {journey: winback}"},
            )
        return self


class _Built:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.specs: object = None
        self.model: type[YamlModel] | None = None


_BUILT = _Built()


def broadcast_model() -> type[YamlModel]:
    """The model of a broadcast file for the installed channels (their message variants)."""
    specs = registry.specs()
    with _BUILT.lock:
        if _BUILT.specs is not specs or _BUILT.model is None:
            message: Any = message_model({n: channel_models(s) for n, s in specs.items()})
            _BUILT.model = create_model(
                "Broadcast",
                __base__=YamlModel,
                __doc__="One message to a whole audience at a set time (broadcasts/).",
                id=(
                    BroadcastId,
                    Field(description="The broadcast's id: carillon broadcasts start <id>."),
                ),
                name=(Text, Field(description="How people read it.")),
                description=(Text | None, Field(None)),
                audience=(Audience, Field(description=Audience.__doc__)),
                at=(
                    At,
                    Field(
                        description="When: 2027-11-26T09:00 is 09:00 in each person's timezone "
                        "(the `timezone` trait, else CARILLON_DEFAULT_TIMEZONE); with an offset "
                        "(+01:00, Z) one instant for everybody."
                    ),
                ),
                rate=(
                    Rate | None,
                    Field(
                        None,
                        description="At most this many messages planned per period (200/s, "
                        "5000/m); within the channel's CARILLON_RATE_LIMITS. Default: as fast "
                        "as the channel allows.",
                    ),
                ),
                send=(Send, Field(description=Send.__doc__)),
                messages=(
                    Annotated[dict[MessageName, message], Field(min_length=1)] | None,
                    Field(
                        None,
                        description="The messages, as in a journey file: a variant per channel, "
                        "and per locale under `locales`. Needed by send: {channel, message}.",
                    ),
                ),
            )
            _BUILT.specs = specs
        return _BUILT.model


LATEST_OFFSET = timedelta(hours=14)  # the first local clocks to show a time (Kiribati)
