"""Where each problem is reported: the checker collects one file's issues with the line and
column of the key or value at fault, and holds the small checks every part of a journey uses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

from app.journeys.conditions import Condition, ConditionSyntaxError, compile_condition
from app.journeys.definition import parse_duration
from app.journeys.templates import TemplateSyntaxError, Versions
from app.yamlfiles.issues import FileInvalid, Issue
from app.yamlfiles.positions import (
    Pos,
    inner_position,
    item_position,
    key_position,
    value_position,
)
from app.yamlfiles.wording import allowed_hint, describe

_T = TypeVar("_T")
_ZERO = re.compile(r"0+[smhd]")
_DURATION_HINT = "write a whole number followed by s, m, h or d: 30s, 15m, 1h, 7d"
_FAILED: Any = object()  # `_json` could not convert a value (an issue was reported)


class JourneyInvalid(FileInvalid):
    """A journey file has problems; `issues` lists all of them."""


@dataclass(frozen=True)
class _Field:
    """A value from the document, with where its key and the value itself are written.

    `beside` holds the keys written next to a step kind in the same list item (`on_timeout`
    beside `wait_for`, `winner` beside `split`), so step parsers keep one signature."""

    value: Any
    key: Pos
    at: Pos
    beside: Mapping[str, _Field] = field(default_factory=dict)


class _Checker:
    """Collects the issues of one file; each check reports and returns None on failure."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.issues: list[Issue] = []
        self.splits: list[tuple[str, Pos]] = []  # (path, where) of every split step seen
        # (metric, where it is written) of every split's `winner:`, checked against the goal.
        self.winners: list[tuple[str, Pos]] = []
        # `messages:` by name; None for one written with mistakes (already reported).
        self.messages: dict[str, Mapping[str, Versions] | None] = {}
        # (message, where `message:` is written) of every `channel: preferred` send seen.
        self.preferred: list[tuple[str, Pos]] = []

    def error(self, pos: Pos, message: str, hint: str | None = None) -> None:
        self.issues.append(Issue(self.file, pos[0], pos[1], message, hint))

    def field(self, mapping: Any, key: str) -> _Field | None:
        return self.entry(mapping, key) if key in mapping else None

    def entry(self, mapping: Any, key: Any) -> _Field:
        """The value of a key that is in `mapping` (e.g. while iterating over its keys)."""
        return _Field(mapping[key], key_position(mapping, key), value_position(mapping, key))

    def keys(
        self,
        mapping: Any,
        where: Pos,
        section: str,
        required: Iterable[str],
        optional: Iterable[str] = (),
        hints: Mapping[str, str] | None = None,
    ) -> None:
        """Report unknown keys (at the key) and missing required ones (at `where`); `hints`
        replaces the did-you-mean hint for keys that are known mistakes in this section."""
        required = list(required)
        allowed = [*required, *optional]
        for key in mapping:
            if key not in allowed:
                self.error(
                    key_position(mapping, key),
                    f"unknown key {str(key)!r} in {section}",
                    (hints or {}).get(str(key)) or allowed_hint(str(key), allowed),
                )
        for key in required:
            if key not in mapping:
                self.error(where, f"{section} is missing required key {key!r}")

    def mapping(self, f: _Field, what: str, hint: str) -> Any:
        if isinstance(f.value, dict):
            return f.value
        self.error(f.at, f"{what} must be a mapping of keys, not {describe(f.value)}", hint)
        return None

    def text(self, f: _Field, what: str, hint: str | None = None) -> str | None:
        if isinstance(f.value, str) and f.value.strip():
            return str(f.value)
        if isinstance(f.value, str):
            self.error(f.at, f"{what} must not be empty", hint)
            return None
        if isinstance(f.value, dict) and hint is None:  # `subject: {{ x }}` is a YAML mapping
            hint = 'text that starts with { must be quoted: "{{ ... }}"'
        elif isinstance(f.value, int | float) and hint is None:
            hint = f'write it in quotes: "{f.value}"'
        self.error(f.at, f"{what} must be text, not {describe(f.value)}", hint)
        return None

    def sequence(self, f: _Field, what: str, of: str, hint: str, empty: bool = False) -> Any:
        """A list of `of` (a CommentedSeq, which knows where each item is written), non-empty
        unless `empty` allows it."""
        if isinstance(f.value, list) and (f.value or empty):
            return f.value
        kind = "list" if empty else "non-empty list"
        self.error(f.at, f"{what} must be a {kind} of {of}, not {describe(f.value)}", hint)
        return None

    def items(self, seq: Any) -> Iterator[tuple[int, _Field]]:
        """Each item of a list with where it is written."""
        for index, item in enumerate(seq):
            at = item_position(seq, index)
            yield index, _Field(item, at, at)

    def offset(self, f: _Field, what: str) -> timedelta | None:
        """A time in a test scenario: a duration, or zero (`0s`) for "at once"."""
        if isinstance(f.value, str) and _ZERO.fullmatch(f.value):
            return timedelta(0)  # `parse_duration` refuses zero, which is right for waits only
        return self.duration(f, what)

    def duration(self, f: _Field, what: str) -> Any:
        if isinstance(f.value, int) and not isinstance(f.value, bool):
            n = f.value
            self.error(f.at, f"{what} needs a unit", f"write {n}s, {n}m, {n}h or {n}d")
            return None
        if (text := self.text(f, what, _DURATION_HINT)) is None:
            return None
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.error(f.at, f"{what}: {exc}", _DURATION_HINT)
            return None

    def compiled(
        self, f: _Field, what: str, compile: Callable[[str], _T], hint: str | None = None
    ) -> _T | None:
        """A CEL condition or a template, compiled; syntax errors point inside the text."""
        if (text := self.text(f, what, hint)) is None:
            return None
        try:
            return compile(text)
        except (ConditionSyntaxError, TemplateSyntaxError) as exc:
            pos = self.inner(f.at, text, exc.line, exc.column)
            self.error(pos, f"{what}: {exc.message}", exc.hint)
            return None

    def inner(self, at: Pos, text: str, line: int, column: int) -> Pos:
        return inner_position(self.lines, at, text, line, column)


def _event_rule(
    c: _Checker,
    f: _Field,
    section: str,
    more: Iterable[str] = (),
    example: str | None = None,
    hints: Mapping[str, str] | None = None,
) -> tuple[str, Condition | None] | None:
    """`trigger`, `exit_when`, `goal`, `wait_for`: an event name and an optional CEL condition.

    `more` names the section's other keys, which the caller reads and checks."""
    example = example or f"e.g. {section}: {{event: Order Completed}}"
    if (rule := c.mapping(f, section, example)) is None:
        return None
    c.keys(rule, f.key, section, ("event",), ("when", *more), hints)
    event = c.text(e, f"{section}.event") if (e := c.field(rule, "event")) else None
    when = c.field(rule, "when")
    condition = (
        c.compiled(when, f"{section}.when", compile_condition, "e.g. event.properties.total >= 20")
        if when
        else None
    )
    if event is None or (when is not None and condition is None):
        return None
    return event, condition


def _json(c: _Checker, f: _Field, what: str) -> Any:
    """A YAML value as plain JSON data (dicts, lists, str, int, float, bool, None), or
    `_FAILED` after reporting what JSON cannot hold (dates, binary, infinities)."""
    value = f.value
    if value is None or isinstance(value, bool | str):
        return value if not isinstance(value, str) else str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return float(value)
    if isinstance(value, dict):
        mapping: dict[str, Any] = {}
        for key in value:
            item = c.entry(value, key)
            if not isinstance(key, str):
                c.error(item.key, f"{what}: the key {key!r} must be text", "write it in quotes")
                mapping[str(key)] = _FAILED
            else:
                mapping[key] = _json(c, item, f"{what}.{key}")
        return _FAILED if any(v is _FAILED for v in mapping.values()) else mapping
    if isinstance(value, list):
        items = [_json(c, item, f"{what}[{index}]") for index, item in c.items(value)]
        return _FAILED if any(v is _FAILED for v in items) else items
    example = ', e.g. "2026-01-31"' if isinstance(value, date) else ""
    c.error(
        f.at,
        f"{what} must be text, a number, true/false, null, a list or a mapping, "
        f"not {describe(value)}",
        f"write it in quotes to make it text{example}",
    )
    return _FAILED
