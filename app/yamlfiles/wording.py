"""How a value or a list of choices is named in a message: in the words a marketer wrote it
with (a number, a yes/no value, a date), not Python's."""

from __future__ import annotations

from datetime import date
from difflib import get_close_matches
from typing import Any


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list | dict):
        kind = "list" if isinstance(value, list) else "mapping"
        return f"a {kind}" if value else f"an empty {kind}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    return "nothing" if value is None else repr(str(value))


def allowed_hint(name: str, allowed: list[str]) -> str:
    """The allowed names, led by the closest one to a misspelt `name`."""
    close = get_close_matches(name, allowed, n=1)
    listed = f"allowed: {', '.join(allowed)}"
    return f"did you mean {close[0]!r}? {listed}" if close else listed


def closest_hint(name: str, known: list[str], otherwise: str) -> str:
    """ "did you mean …?" with the closest known name to a misspelt `name`, else `otherwise`
    (where to find the names)."""
    close = get_close_matches(name, known, n=1)
    return f"did you mean {close[0]!r}?" if close else otherwise
