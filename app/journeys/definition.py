"""A journey as the runtime sees it: plain, frozen, already validated.

The loader builds these from YAML; nothing here knows about YAML, so the runtime (and tests)
can build journeys by hand. Frozen dataclasses rather than pydantic models: the objects are
produced once per file version and shared between threads, and they carry compiled CEL and
Jinja2 objects that need no (de)serialisation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from app.journeys.conditions import Condition
from app.journeys.templates import Template


@dataclass(frozen=True)
class Trigger:
    """Who enters: people who send `event`, if `when` (CEL) holds for that event."""

    event: str
    when: Condition | None


@dataclass(frozen=True)
class ExitWhen:
    """Who leaves early: people on the journey who send `event`, if `when` holds."""

    event: str
    when: Condition | None


@dataclass(frozen=True)
class ReEntry:
    """Whether someone who already went through the journey may enter it again."""

    mode: Literal["never", "always", "cooldown"]
    cooldown: timedelta | None


@dataclass(frozen=True)
class WaitStep:
    """Pause the trip for `duration`."""

    path: str
    duration: timedelta


@dataclass(frozen=True)
class SendStep:
    """Send one message on `channel`; every content value is a template rendered at send time."""

    path: str
    channel: str
    content: Mapping[str, Template]


@dataclass(frozen=True)
class ExitStep:
    """End the trip here."""

    path: str


Step = WaitStep | SendStep | ExitStep


@dataclass(frozen=True)
class Journey:
    """One journey file. `source` and `checksum` let the runtime pin and compare versions."""

    id: str
    name: str
    enabled: bool
    trigger: Trigger
    exit_when: ExitWhen | None
    re_entry: ReEntry
    steps: tuple[Step, ...]
    source: str
    checksum: str
    file: str


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_DURATION = re.compile(r"(\d+)([smhd])")
# Spelled-out units marketers naturally type, so an error can suggest the right spelling.
_UNIT_WORDS = {
    "s": ("sec", "secs", "second", "seconds"),
    "m": ("min", "mins", "minute", "minutes"),
    "h": ("hr", "hrs", "hour", "hours"),
    "d": ("day", "days"),
}
_EXAMPLES = "like 30s, 15m, 1h or 7d"


def parse_duration(text: str) -> timedelta:
    """Parse `<whole number><unit>` with unit s, m, h or d (`2s`, `15m`, `1h`, `7d`).

    Only one compact form is accepted so that every journey file reads the same; zero is
    rejected because a zero wait or cooldown is always a mistake (omit it instead).
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration {_EXAMPLES}{_suggestion(text)}")
    amount, unit = int(match.group(1)), match.group(2)
    if amount == 0:
        raise ValueError(f"duration {text!r} must be greater than zero")
    try:
        return timedelta(**{_UNITS[unit]: amount})
    except OverflowError:
        raise ValueError(f"duration {text!r} is too long") from None


def _suggestion(text: str) -> str:
    """`1 hour` → `; did you mean '1h'?`"""
    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]+)\s*", text)
    if match is None:
        return ""
    amount, word = match.group(1), match.group(2).lower()
    for unit, words in _UNIT_WORDS.items():
        if word == unit or word in words:
            return f"; did you mean '{amount}{unit}'?"
    return ""
