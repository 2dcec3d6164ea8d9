"""Durations (`30s`, `15m`, `1h`, `7d`) and frequency caps (`1/24h`), spelled one way in journey
files and settings alike.

At the bottom of the import graph (nothing of Carillon imported), so the settings can check
`CARILLON_FREQUENCY_CAPS` and `CARILLON_RATE_LIMITS` at start-up without importing the journey
language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Cap:
    """At most `count` messages on one channel to one person in any `window` (`1/24h`)."""

    count: int
    window: timedelta
    spelled: str  # as written, for reasons and logs

    def __str__(self) -> str:
        return self.spelled


def parse_cap(text: str) -> Cap:
    """`<count>/<duration>`: `1/24h`, `3/7d`. The count is at least 1: a channel nobody may
    receive is a consent matter, not a cap."""
    count, sep, window = (part.strip() for part in text.partition("/"))
    if not sep or not re.fullmatch(r"[0-9]+", count):
        raise ValueError(f"{text!r} is not a frequency cap; write count/duration, e.g. 1/24h")
    if int(count) < 1:
        raise ValueError(f"frequency cap {text!r} must allow at least 1 message")
    return Cap(int(count), parse_duration(window), f"{int(count)}/{window}")


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
