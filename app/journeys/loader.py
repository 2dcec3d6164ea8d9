"""Journey YAML files → validated `Journey` objects, or every problem as `file:line:column`.

Validation is written by hand over ruamel.yaml's round-trip nodes rather than with a schema
library because each node keeps its line and column: every issue points at the exact key or
value to fix, and checking goes on after the first error so a marketer sees all of a file's
problems at once. Each step kind is parsed by one small function found in `STEP_PARSERS`, so
a new kind is one function and one table entry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from difflib import get_close_matches
from functools import cache, partial
from importlib import import_module
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from app.journeys.conditions import Condition, ConditionSyntaxError, compile_condition
from app.journeys.definition import (
    ExitStep,
    ExitWhen,
    Journey,
    ReEntry,
    SendStep,
    Step,
    Trigger,
    WaitStep,
    parse_duration,
)
from app.journeys.templates import Template, TemplateSyntaxError, compile_template

Pos = tuple[int, int]  # 1-based line, column
_T = TypeVar("_T")
_START: Pos = (1, 1)
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
_DIGITS = re.compile(r"[0-9]+")
_MAX_ID = 100  # journey_versions.journey_id is VARCHAR(100)
_DURATION_HINT = "write a whole number followed by s, m, h or d: 30s, 15m, 1h, 7d"


@dataclass(frozen=True)
class Issue:
    """One problem in one file, in the `file:line:column: message` form editors understand."""

    file: str
    line: int
    column: int
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class JourneyInvalid(Exception):
    """A journey file has problems; `issues` lists all of them."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("\n".join(str(issue) for issue in issues))
        self.issues = issues


# --- public API ----------------------------------------------------------------------------


def parse_journey(text: str, file: str) -> Journey:
    """Parse one journey file's text; raise `JourneyInvalid` with all its issues."""
    return _parse(text, file)[0]


def load_directory(path: Path) -> tuple[list[Journey], list[Issue]]:
    """Every `*.yaml` / `*.yml` file directly in `path`, in name order.

    An invalid file gives issues and no journey. A journey id already used by an earlier file
    is an issue too, and the later file is left out, so an id always means one journey."""
    if not path.is_dir():
        return [], [Issue(str(path), 1, 1, "journeys directory not found")]
    journeys: list[Journey] = []
    issues: list[Issue] = []
    owners: dict[str, str] = {}
    for file in sorted(path.iterdir()):
        if file.suffix not in (".yaml", ".yml") or file.name.startswith(".") or file.is_dir():
            continue
        try:
            journey, id_pos = _parse(_read(file), str(file))
        except JourneyInvalid as exc:
            issues.extend(exc.issues)
            continue
        if journey.id in owners:
            message = f"journey id {journey.id!r} is already used by {owners[journey.id]}"
            issues.append(Issue(str(file), *id_pos, message, "give each journey its own id"))
            continue
        owners[journey.id] = str(file)
        journeys.append(journey)
    return journeys, issues


def load_path(path: Path) -> tuple[list[Journey], list[Issue]]:
    """A single journey file, or a directory of them."""
    if path.is_dir():
        return load_directory(path)
    try:
        return [parse_journey(_read(path), str(path))], []
    except JourneyInvalid as exc:
        return [], exc.issues


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        issue = Issue(str(path), line, 1, "file is not valid UTF-8 text")
    except OSError as exc:
        issue = Issue(str(path), 1, 1, f"cannot read file: {exc.strerror}")
    raise JourneyInvalid([issue])


# --- the checker: issues and positions for one file ----------------------------------------


@dataclass(frozen=True)
class _Field:
    """A value from the document, with where its key and the value itself are written."""

    value: Any
    key: Pos
    at: Pos


class _Checker:
    """Collects the issues of one file; each check reports and returns None on failure."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.issues: list[Issue] = []

    def error(self, pos: Pos, message: str, hint: str | None = None) -> None:
        self.issues.append(Issue(self.file, pos[0], pos[1], message, hint))

    def field(self, mapping: Any, key: str) -> _Field | None:
        if key not in mapping:
            return None
        value, key_pos = mapping[key], _lc(mapping.lc.key, key)
        return _Field(value, key_pos, key_pos if value is None else _lc(mapping.lc.value, key))

    def keys(
        self,
        mapping: Any,
        where: Pos,
        section: str,
        required: Iterable[str],
        optional: Iterable[str] = (),
    ) -> None:
        """Report unknown keys (at the key) and missing required ones (at `where`)."""
        required = list(required)
        allowed = [*required, *optional]
        for key in mapping:
            if key not in allowed:
                self.error(
                    _lc(mapping.lc.key, key),
                    f"unknown key {str(key)!r} in {section}",
                    _allowed_hint(str(key), allowed),
                )
        for key in required:
            if key not in mapping:
                self.error(where, f"{section} is missing required key {key!r}")

    def mapping(self, f: _Field, what: str, hint: str) -> Any:
        if isinstance(f.value, dict):
            return f.value
        self.error(f.at, f"{what} must be a mapping of keys, not {_describe(f.value)}", hint)
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
        self.error(f.at, f"{what} must be text, not {_describe(f.value)}", hint)
        return None

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
        """Where (line, column) of a scalar's own text is written in the file, when that is
        certain (one-line scalars, literal `|` blocks); otherwise where the scalar starts."""
        row, col = at
        source = self.lines[row - 1] if row <= len(self.lines) else ""
        indicator = source[col - 1 : col]
        if indicator == "|" or (indicator == ">" and line == 1):
            body = [ln for ln in self.lines[row:] if ln.strip()][:1] or [""]
            indent = len(body[0]) - len(body[0].lstrip(" "))  # the block's indentation
            target = row + line
            content = self.lines[target - 1] if target <= len(self.lines) else ""
            return (target, indent + column) if indent + column - 1 <= len(content) else at
        start = col + (1 if indicator in ("'", '"') else 0)
        first = text.splitlines()[0] if text else ""
        same = line == 1 and source[start - 1 :].startswith(first)
        return (row, start + column - 1) if same else at


def _lc(lookup: Callable[[Any], tuple[int, int]], key: Any) -> Pos:
    try:
        line, column = lookup(key)
    except (KeyError, IndexError, TypeError):  # e.g. keys merged in with `<<:`
        return _START
    return line + 1, column + 1


def _allowed_hint(name: str, allowed: list[str]) -> str:
    close = get_close_matches(name, allowed, n=1)
    listed = f"allowed: {', '.join(allowed)}"
    return f"did you mean {close[0]!r}? {listed}" if close else listed


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list | dict):
        kind = "list" if isinstance(value, list) else "mapping"
        return f"a {kind}" if value else f"an empty {kind}"
    return "nothing" if value is None else repr(str(value))


# --- the journey document ------------------------------------------------------------------


def _parse(text: str, file: str) -> tuple[Journey, Pos]:
    """The journey, and where its id is written (for duplicate-id issues)."""
    c = _Checker(file, text)
    data = _load_yaml(c, text)
    if not isinstance(data, dict):
        c.error(_START, "a journey file must be a mapping with id, name, trigger and steps")
        raise JourneyInvalid(c.issues)
    c.keys(
        data,
        _START,
        "the journey",
        ("id", "name", "trigger", "steps"),
        ("description", "enabled", "exit_when", "re_entry"),
    )
    id_field = c.field(data, "id")
    journey_id = _journey_id(c, id_field) if id_field else None
    name = c.text(f, "name") if (f := c.field(data, "name")) else None
    if f := c.field(data, "description"):
        c.text(f, "description")
    enabled = _enabled(c, c.field(data, "enabled"))
    trigger = _event_rule(c, f, "trigger") if (f := c.field(data, "trigger")) else None
    exit_when = _event_rule(c, f, "exit_when") if (f := c.field(data, "exit_when")) else None
    re_entry = _re_entry(c, c.field(data, "re_entry"))
    steps = _step_list(c, f, "steps", "") if (f := c.field(data, "steps")) else None
    if c.issues:
        raise JourneyInvalid(sorted(c.issues, key=lambda issue: (issue.line, issue.column)))
    assert id_field and journey_id and name and trigger and re_entry and steps
    journey = Journey(
        id=journey_id,
        name=name,
        enabled=enabled,
        trigger=Trigger(*trigger),
        exit_when=ExitWhen(*exit_when) if exit_when else None,
        re_entry=re_entry,
        steps=steps,
        source=text,
        checksum=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        file=file,
    )
    return journey, id_field.at


_YAML_HINTS = {
    "'\\t'": "indent with spaces, not tabs",
    "mapping values are not allowed": 'put quotes around a value that contains ": "',
    "duplicate key": "each key may appear only once in a mapping",
    "cannot start any token": "put quotes around the value",
}


def _load_yaml(c: _Checker, text: str) -> Any:
    yaml = YAML(typ="rt")  # round-trip nodes carry positions; one instance per call is safe
    yaml.preserve_quotes = True  # so positions inside quoted scalars can be computed
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = str(exc.problem or exc.context or "invalid YAML")
        hint = next((h for text, h in _YAML_HINTS.items() if text in problem), None)
        c.error(
            (mark.line + 1, mark.column + 1) if mark else _START, f"invalid YAML: {problem}", hint
        )
    except YAMLError as exc:
        c.error(_START, f"invalid YAML: {exc}")
    raise JourneyInvalid(c.issues)


def _journey_id(c: _Checker, f: _Field) -> str | None:
    text = c.text(f, "id")
    if text is not None and (not _SLUG.fullmatch(text) or len(text) > _MAX_ID):
        c.error(
            f.at,
            f"id {text!r} is not a valid journey id",
            f"use up to {_MAX_ID} lowercase letters, digits and dashes, starting with a "
            "letter or digit, e.g. cart-abandonment",
        )
        return None
    return text


def _enabled(c: _Checker, f: _Field | None) -> bool:
    if f is None or isinstance(f.value, bool):
        return True if f is None else bool(f.value)
    c.error(
        f.at,
        f"enabled must be true or false, not {_describe(f.value)}",
        "write enabled: true or enabled: false, without quotes",
    )
    return True


def _event_rule(c: _Checker, f: _Field, section: str) -> tuple[str, Condition | None] | None:
    """`trigger` and `exit_when`: an event name and an optional CEL condition."""
    if (rule := c.mapping(f, section, f"e.g. {section}: {{event: Order Completed}}")) is None:
        return None
    c.keys(rule, f.key, section, ("event",), ("when",))
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


def _re_entry(c: _Checker, f: _Field | None) -> ReEntry | None:
    if f is None or f.value in ("never", "always"):
        return ReEntry("always" if f and f.value == "always" else "never", None)
    if not isinstance(f.value, dict):
        c.error(
            f.at,
            f"re_entry must be never, always or a cooldown, not {_describe(f.value)}",
            "write re_entry: never, re_entry: always, or re_entry: {cooldown: 7d}",
        )
        return None
    c.keys(f.value, f.key, "re_entry", ("cooldown",))
    cooldown = c.field(f.value, "cooldown")
    duration = c.duration(cooldown, "re_entry.cooldown") if cooldown else None
    return ReEntry("cooldown", duration) if duration else None


# --- steps ----------------------------------------------------------------------------------

StepParser = Callable[[_Checker, _Field, str], Step | None]  # (checker, step's value, path)


def _step_list(c: _Checker, f: _Field, what: str, prefix: str) -> tuple[Step, ...] | None:
    """A list of steps; `prefix` is the path of the step holding it ("" at the top level)."""
    if not isinstance(f.value, list) or not f.value:
        c.error(
            f.at,
            f"{what} must be a non-empty list of steps, not {_describe(f.value)}",
            "start each step on its own line with '- ', e.g. - wait: 1h",
        )
        return None
    items: Any = f.value  # a CommentedSeq: it knows where each item is written
    steps: list[Step] = []
    exit_path: str | None = None
    unreachable = False
    for index, item in enumerate(items):
        path = f"{prefix}.{index}" if prefix else str(index)
        at = _lc(items.lc.item, index)
        if exit_path is not None and not unreachable:  # report the first one only
            c.error(
                at,
                f"step {path} can never run: it comes after exit (step {exit_path})",
                "remove it, or move exit to the end",
            )
            unreachable = True
        step = _step(c, _Field(item, at, at), path)
        if step is not None:
            steps.append(step)
            if isinstance(step, ExitStep) and exit_path is None:
                exit_path = path
    return tuple(steps) if len(steps) == len(items) and not unreachable else None


def _step(c: _Checker, f: _Field, path: str) -> Step | None:
    """One list item: a bare word (`exit`) or a mapping with exactly one step kind."""
    kinds = [*STEP_PARSERS, *BARE_STEPS]
    if isinstance(f.value, str) and f.value in BARE_STEPS:
        return BARE_STEPS[f.value](path)
    if isinstance(f.value, dict) and len(f.value) == 1:
        (kind,) = f.value
        field = c.field(f.value, kind)
        assert field is not None
        if parser := STEP_PARSERS.get(kind):
            return parser(c, field, path)
        hint = (
            f"write '- {kind}' alone, without ':'"
            if kind in BARE_STEPS
            else _allowed_hint(str(kind), kinds)
        )
        c.error(field.key, f"unknown step kind {str(kind)!r}", hint)
    elif isinstance(f.value, str):
        c.error(f.at, f"unknown step {f.value!r}", _allowed_hint(f.value, kinds))
    elif isinstance(f.value, dict) and f.value:
        keys = list(f.value)
        hint = "put each step in its own list item starting with '- '"
        if any(key in STEP_PARSERS and f.value[key] is None for key in keys):
            hint = "indent the options under the step kind, two spaces further than it"
        c.error(f.at, f"a step has exactly one kind, found {', '.join(map(str, keys))}", hint)
    else:
        c.error(
            f.at,
            f"a step must be one of {', '.join(kinds)}, not {_describe(f.value)}",
            "e.g. - wait: 1h",
        )
    return None


def _wait_step(c: _Checker, f: _Field, path: str) -> Step | None:
    duration = c.duration(f, "wait")
    return WaitStep(path, duration) if duration else None


def _send_step(c: _Checker, f: _Field, path: str) -> Step | None:
    if (send := c.mapping(f, "send", "e.g. send: {channel: sms, text: ...}")) is None:
        return None
    channels, required_content = _channel_rules()
    if (channel_field := c.field(send, "channel")) is None:
        c.error(f.key, "send is missing required key 'channel'", f"one of: {', '.join(channels)}")
        return None
    if (channel := c.text(channel_field, "channel")) is None:
        return None
    if channel not in channels:
        c.error(channel_field.at, f"unknown channel {channel!r}", _allowed_hint(channel, channels))
        return None
    content_keys = sorted(required_content(channel))
    c.keys(send, f.key, f"send ({channel})", ("channel", *content_keys))
    content: dict[str, Template] = {}
    for key in content_keys:
        compile = partial(compile_template, html=key == "html")
        if (kf := c.field(send, key)) and (template := c.compiled(kf, key, compile)):
            content[key] = template
            if key == "audience_id" and "{" not in kf.value and not _DIGITS.fullmatch(kf.value):
                c.error(
                    kf.at,
                    f"audience_id {kf.value!r} is not a Meta audience id",
                    'an audience id is digits only, e.g. "23850000000000001"',
                )
    if len(content) != len(content_keys):
        return None
    return SendStep(path, channel, MappingProxyType(content))


STEP_PARSERS: dict[str, StepParser] = {"wait": _wait_step, "send": _send_step}
BARE_STEPS: dict[str, Callable[[str], Step]] = {"exit": ExitStep}


_FALLBACK_CONTENT = {
    "email": ("subject", "html", "text"),
    "sms": ("text",),
    "meta_audience": ("audience_id",),
}


@cache
def _channel_rules() -> tuple[list[str], Callable[[str], Iterable[str]]]:
    """Channel names and content keys come from the channel registry, the one list of
    channels; the fallback copy only serves while that registry does not exist yet."""
    try:
        registry: Any = import_module("channels.registry")
    except ModuleNotFoundError as exc:
        if exc.name != "channels.registry":
            raise
        return list(_FALLBACK_CONTENT), _FALLBACK_CONTENT.__getitem__
    return list(registry.CHANNEL_NAMES), registry.required_content
