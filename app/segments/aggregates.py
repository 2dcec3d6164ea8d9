"""The aggregates themselves, on plain values: what an event adds to a running value, and what
a window's kept events add up to. No database here, so each rule is tested on its own.

A value the aggregate cannot use (a `sum` of text, a path the event does not have) leaves the
trait as it was: one malformed event must not wipe a customer's spend.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

MISSING = object()


def extract(payload: dict[str, Any], timestamp: datetime, path: tuple[str, ...]) -> Any:
    """The event's value at `path`; `timestamp` is the event's time (as stored, ISO 8601);
    `MISSING` when the event has no such value."""
    if path == ("timestamp",):
        return timestamp.isoformat()
    node: Any = payload
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return MISSING if node is None else node


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparable(a: Any, b: Any) -> bool:
    return (_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))


def fold(kind: str, value: Any, state: Any, item: Any, at: datetime) -> tuple[Any, Any]:
    """A running aggregate's (value, state) once the event (`item` at `at`) is added. The
    state of `first` and `last` is the event time of the value, so late events converge."""
    if kind == "count":
        return (value or 0) + 1, state
    if item is MISSING:
        return value, state
    if kind == "sum":
        return ((value or 0) + item, state) if _number(item) else (value, state)
    if kind in ("min", "max"):
        if value is None:
            return (item, state) if _number(item) or isinstance(item, str) else (value, state)
        if not _comparable(value, item):
            return value, state
        better = item < value if kind == "min" else item > value
        return (item, state) if better else (value, state)
    if kind in ("first", "last"):
        seen = datetime.fromisoformat(state["at"]) if isinstance(state, dict) else None
        if seen is None or (at < seen if kind == "first" else at >= seen):
            return item, {"at": at.isoformat()}
        return value, state
    raise ValueError(f"{kind} is not a running aggregate")


def over(kind: str, kept: Sequence[tuple[datetime, Any]]) -> Any:
    """The aggregate of the kept events (time, value), oldest first; None when nothing counts
    (a count is 0: nobody did it, which a segment compares against)."""
    if kind == "count":
        return len(kept)
    values = [value for _, value in kept if value is not MISSING and value is not None]
    if kind == "sum":
        numbers = [v for v in values if _number(v)]
        return sum(numbers) if numbers else None
    if kind in ("min", "max"):
        usable = [v for v in values if _number(v)] or [v for v in values if isinstance(v, str)]
        if not usable:
            return None
        return min(usable) if kind == "min" else max(usable)
    if kind == "first":
        return values[0] if values else None
    if kind == "last":
        return values[-1] if values else None
    if kind == "distinct":
        return len({_key(v) for v in values})
    raise ValueError(f"unknown aggregate {kind}")


def _key(value: Any) -> Any:
    """Hashable, and 1 and 1.0 the same value, as JSON has them."""
    if isinstance(value, list | dict):
        return repr(value)
    return value
