"""What a JSON value may hold before Carillon stores it, checked with the path to the culprit.

Every value of an event ends up in a database column, a JSON column, or CEL and Jinja at
routing time. Some JSON that Python parses happily cannot go there: PostgreSQL refuses NUL
characters and lone UTF-16 surrogates in text and JSONB, JSONB has no NaN or Infinity,
Python's int() refuses more than 4,300 digits, and serializers give up on deep nesting. A
request carrying any of these is refused at ingest (400 naming the field) instead of failing
later, where a 5xx makes SDKs resend the batch forever.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Objects and arrays nested inside one event. Real properties are a few levels deep; the
# serializers downstream give up somewhere past 250.
MAX_DEPTH = 32
# Numbers are kept to what a warehouse BIGINT, CEL's int and JSONB round-trip exactly.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
# A longer literal cannot fit in 64 bits; refusing it unread keeps int() off huge inputs.
_MAX_INT_DIGITS = 20
_FLOAT_INT_EDGE = float(2**63)
_PLAIN_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-$@")
_MAX_SHOWN_KEY = 64
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


class InvalidEvent(ValueError):
    """A request Carillon refuses; the message names the offending field."""


@dataclass(frozen=True)
class Unrepresentable:
    """A number the decoder met that Carillon cannot store; reported with its path by
    `check`, which knows where it sits (the decoder does not)."""

    reason: str


def _parse_int(text: str) -> int | Unrepresentable:
    digits = len(text.lstrip("-"))
    value = int(text) if digits <= _MAX_INT_DIGITS else None
    if value is None or not MIN_INT <= value <= MAX_INT:
        return Unrepresentable("integers must fit in 64 bits (-2^63 to 2^63-1)")
    return value


def _parse_float(text: str) -> float | Unrepresentable:
    value = float(text)
    if not math.isfinite(value):
        return Unrepresentable(f"{text[:32]} is not a finite number")
    # PostgreSQL's JSONB prints 1.5e300 with all its digits, so it reads back as an integer
    # (and overflows CEL's int): the integers' range holds for every number.
    if abs(value) >= _FLOAT_INT_EDGE:
        return Unrepresentable(f"{text[:32]} is beyond +/-2^63, the range of stored numbers")
    return value


def _parse_constant(text: str) -> Unrepresentable:
    return Unrepresentable(f"{text} is not a JSON number")


def loads(text: str) -> Any:
    """`json.loads` with the numbers Carillon cannot store left as `Unrepresentable`."""
    return json.loads(
        text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
    )


def _segment(key: str) -> str:
    if key and len(key) <= _MAX_SHOWN_KEY and set(key) <= _PLAIN_KEY_CHARS:
        return f".{key}"
    # ASCII escapes: the message must stay printable and encodable whatever the key holds.
    shown = key if len(key) <= _MAX_SHOWN_KEY else key[:_MAX_SHOWN_KEY] + "..."
    return f"[{json.dumps(shown)}]"


def path(prefix: str, loc: Sequence[int | str]) -> str:
    """`batch[3].properties.total` from a prefix and the keys and indexes below it."""
    where = prefix
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else _segment(part)
    return where.lstrip(".") or "body"


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate, which is not a character"
    return None


def checked_size(value: Any, prefix: str = "") -> int:
    """Bytes of the compact UTF-8 JSON form of `value` (what Segment's size limits count), or
    InvalidEvent naming the first field that cannot be stored as it is.

    The JSON text, made by the json module's C encoder, clears the common value at once: no
    unstorable number (it cannot be encoded), no lone surrogate (it cannot be UTF-8), no NUL
    (it would show as an escape), and too few brackets to be nested too deep. Only a value it
    does not clear is walked in Python, to name the culprit or find there is none."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        size = len(text.encode())
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        check(value, prefix)  # names the culprit
        raise  # a value json refuses and the walk accepts would be a bug of this module
    if "\\u0000" in text or _deeper_than(text, MAX_DEPTH + 1):
        check(value, prefix)
    return size


def _deeper_than(text: str, depth: int) -> bool:
    """Whether the JSON `text` may nest more than `depth` containers; strings are left out."""
    if text.count("{") + text.count("[") <= depth:  # containers, and brackets in strings
        return False
    brackets = _BRACKETS.findall(_STRINGS.sub("", text))
    level = 0
    for bracket in brackets:
        level += 1 if bracket in "[{" else -1
        if level > depth:
            return True
    return False


def check(value: Any, prefix: str = "") -> None:
    """Raise InvalidEvent naming the first field that cannot be stored as it is."""
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while stack:
        item, loc = stack.pop()
        if isinstance(item, dict | list) and len(loc) > MAX_DEPTH:
            raise InvalidEvent(f"{path(prefix, loc)}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            for key in item:
                problem = _string_problem(key)
                if problem:
                    raise InvalidEvent(f"{path(prefix, loc)}: a key {problem}")
            # Reversed onto the stack, so the first culprit in document order is the one named.
            stack.extend((item[key], (*loc, key)) for key in reversed(item))
        elif isinstance(item, list):
            stack.extend((item[i], (*loc, i)) for i in reversed(range(len(item))))
        elif isinstance(item, str):
            problem = _string_problem(item)
            if problem:
                raise InvalidEvent(f"{path(prefix, loc)}: {problem}")
        elif isinstance(item, Unrepresentable):
            raise InvalidEvent(f"{path(prefix, loc)}: {item.reason}")
