"""Journey YAML files → validated `Journey` objects, or every problem as `file:line:column`.

Validation is written by hand over ruamel.yaml's round-trip nodes rather than with a schema
library because each node keeps its line and column: every issue points at the exact key or
value to fix, and checking goes on after the first error so a marketer sees all of a file's
problems at once. Each step kind is parsed by one small function found in `STEP_PARSERS`, so
a new kind is one function and one table entry (and one definition in `schema.py`, the JSON
Schema editors use, which the tests hold to the same corpus of broken files).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from difflib import get_close_matches
from functools import partial
from itertools import count, product
from pathlib import Path
from string import ascii_uppercase
from types import MappingProxyType
from typing import Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from app.journeys.conditions import Condition, ConditionSyntaxError, compile_condition
from app.journeys.definition import (
    BranchArm,
    BranchStep,
    ExitStep,
    ExitWhen,
    ExpectedSend,
    Goal,
    Journey,
    ReEntry,
    Scenario,
    ScenarioEvent,
    SendStep,
    SplitArm,
    SplitStep,
    Step,
    Trigger,
    UpdateProfileStep,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
    parse_duration,
)
from app.journeys.templates import Template, TemplateSyntaxError, compile_template
from channels import registry

Pos = tuple[int, int]  # 1-based line, column
_T = TypeVar("_T")
_START: Pos = (1, 1)
ID_PATTERN = r"[a-z0-9][a-z0-9-]*"
MAX_ID_LENGTH = 100  # journey_versions.journey_id is VARCHAR(100)
MAX_ARM_NAME_LENGTH = 50  # journey_instances.arm and deliveries.arm are VARCHAR(50)
HOLDOUT = "holdout"  # the holdout arm's name: the runtime sends nothing to trips in that arm
TIME_PATTERN = r"([01][0-9]|2[0-3]):[0-5][0-9]"  # `wait: {until: "09:00"}`, 24-hour clock
_SLUG = re.compile(ID_PATTERN)
_TIME = re.compile(TIME_PATTERN)
_ZERO = re.compile(r"0+[smhd]")
_DIGITS = re.compile(r"[0-9]+")
_DURATION_HINT = "write a whole number followed by s, m, h or d: 30s, 15m, 1h, 7d"
_TIME_HINT = 'write a 24-hour time as HH:MM in quotes, e.g. "09:00" or "18:30"'
_STEPS_HINT = "start each step on its own line with '- ', e.g. - wait: 1h"
_FAILED: Any = object()  # `_json` could not convert a value (an issue was reported)


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
    """A value from the document, with where its key and the value itself are written.

    `beside` holds the keys written next to a step kind in the same list item (only
    `on_timeout`, beside `wait_for`), so step parsers keep one signature."""

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

    def error(self, pos: Pos, message: str, hint: str | None = None) -> None:
        self.issues.append(Issue(self.file, pos[0], pos[1], message, hint))

    def field(self, mapping: Any, key: str) -> _Field | None:
        return self.entry(mapping, key) if key in mapping else None

    def entry(self, mapping: Any, key: Any) -> _Field:
        """The value of a key that is in `mapping` (e.g. while iterating over its keys)."""
        value, key_pos = mapping[key], _lc(mapping.lc.key, key)
        return _Field(value, key_pos, key_pos if value is None else _lc(mapping.lc.value, key))

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
                    _lc(mapping.lc.key, key),
                    f"unknown key {str(key)!r} in {section}",
                    (hints or {}).get(str(key)) or _allowed_hint(str(key), allowed),
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

    def sequence(self, f: _Field, what: str, of: str, hint: str, empty: bool = False) -> Any:
        """A list of `of` (a CommentedSeq, which knows where each item is written), non-empty
        unless `empty` allows it."""
        if isinstance(f.value, list) and (f.value or empty):
            return f.value
        kind = "list" if empty else "non-empty list"
        self.error(f.at, f"{what} must be a {kind} of {of}, not {_describe(f.value)}", hint)
        return None

    def items(self, seq: Any) -> Iterator[tuple[int, _Field]]:
        """Each item of a list with where it is written."""
        for index, item in enumerate(seq):
            at = _lc(seq.lc.item, index)
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
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
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
        ("description", "enabled", "exit_when", "re_entry", "goal", "tests"),
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
    goal_field = c.field(data, "goal")
    goal = _goal(c, goal_field) if goal_field else None
    steps = _step_list(c, f, "steps", "") if (f := c.field(data, "steps")) else None
    _one_split(c)
    if goal_field and goal and exit_when and exit_when == (goal.event, None):
        c.error(
            goal_field.key,
            f"the goal cannot be reached during a trip: {goal.event!r} is also the exit_when "
            "event, and exit_when is checked first",
            "remove exit_when: reaching the goal already ends the trip (as converted)",
        )
    tests = _scenarios(c, f) if (f := c.field(data, "tests")) else ()
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
        goal=goal,
        tests=tests,
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
    if text is not None and (not _SLUG.fullmatch(text) or len(text) > MAX_ID_LENGTH):
        c.error(
            f.at,
            f"id {text!r} is not a valid journey id",
            f"use up to {MAX_ID_LENGTH} lowercase letters, digits and dashes, starting with a "
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


def _goal(c: _Checker, f: _Field) -> Goal | None:
    example = "e.g. goal: {event: Order Completed, within: 7d}"
    rule = _event_rule(c, f, "goal", ("within",), example)
    within_field = c.field(f.value, "within") if isinstance(f.value, dict) else None
    within = c.duration(within_field, "goal.within") if within_field else None
    if rule is None or (within_field is not None and within is None):
        return None
    return Goal(rule[0], rule[1], within)


# --- steps ----------------------------------------------------------------------------------

StepParser = Callable[[_Checker, _Field, str], Step | None]  # (checker, step's value, path)


def _step_list(c: _Checker, f: _Field, what: str, prefix: str) -> tuple[Step, ...] | None:
    """A list of steps; `prefix` is the path of the step list ("" at the top level, else
    `<step path>.<arm index>`), so a step's path is `prefix.index`."""
    if (items := c.sequence(f, what, "steps", _STEPS_HINT)) is None:
        return None
    steps: list[Step] = []
    stop: tuple[str, str] | None = None  # why the steps after the current one cannot run
    unreachable = False
    for index, item in c.items(items):
        path = f"{prefix}.{index}" if prefix else str(index)
        if stop is not None and not unreachable:  # report the first one only
            c.error(item.at, f"step {path} can never run: {stop[0]}", stop[1])
            unreachable = True
        step = _step(c, item, path)
        if step is not None:
            steps.append(step)
            stop = stop or _ends_trip(step)
    return tuple(steps) if len(steps) == len(items) and not unreachable else None


def _ends_trip(step: Step) -> tuple[str, str] | None:
    """Why no step can follow `step` in its list (message, hint), or None if one can."""
    if isinstance(step, ExitStep):
        return f"it comes after exit (step {step.path})", "remove it, or move exit to the end"
    if isinstance(step, BranchStep | SplitStep) and _always_exits(step):
        kind = "branch" if isinstance(step, BranchStep) else "split"
        return (
            f"every arm of the {kind} at step {step.path} ends in exit",
            "remove it, or let one of the arms go on without exit",
        )
    return None


def _always_exits(step: Step) -> bool:
    """A trip never goes on after an exit, a branch with an `else` whose every arm always
    exits, or a split (without holdout: holdout people go on) whose every arm always exits."""
    if isinstance(step, ExitStep):
        return True
    if isinstance(step, BranchStep) and step.arms[-1].when is not None:
        return False  # no else: when no condition holds, the trip goes on after the branch
    if isinstance(step, BranchStep | SplitStep):
        return all(arm.steps and _always_exits(arm.steps[-1]) for arm in step.arms)
    return False


def _step(c: _Checker, f: _Field, path: str) -> Step | None:
    """One list item: a bare word (`exit`) or a mapping with exactly one step kind, plus the
    keys that may sit beside it (`on_timeout` beside `wait_for`)."""
    kinds = [*STEP_PARSERS, *BARE_STEPS]
    if isinstance(f.value, str) and f.value in BARE_STEPS:
        return BARE_STEPS[f.value](path)
    if isinstance(f.value, str):
        c.error(f.at, f"unknown step {f.value!r}", _allowed_hint(f.value, kinds))
        return None
    if not isinstance(f.value, dict) or not f.value:
        c.error(
            f.at,
            f"a step must be one of {', '.join(kinds)}, not {_describe(f.value)}",
            "e.g. - wait: 1h",
        )
        return None
    main = [key for key in f.value if key not in BESIDE]
    if len(main) > 1:
        keys = list(f.value)
        hint = "put each step in its own list item starting with '- '"
        if any(key in STEP_PARSERS and f.value[key] is None for key in keys):
            hint = "indent the options under the step kind, two spaces further than it"
        c.error(f.at, f"a step has exactly one kind, found {', '.join(map(str, keys))}", hint)
        return None
    beside = {str(key): c.entry(f.value, key) for key in f.value if key in BESIDE}
    misplaced = [key for key in beside if main != [BESIDE[key]]]
    for key in misplaced:
        owner = BESIDE[key]
        message = (
            f"{key} goes with {owner}, not with {main[0]}"
            if main
            else f"{key} is not a step: it belongs beside a {owner}, in the same list item"
        )
        hint = f"write {key} lined up under its {owner}, with no '- ' before it"
        c.error(beside[key].key, message, hint)
    if not main:
        return None
    (kind,) = main
    value = c.entry(f.value, kind)
    if (parser := STEP_PARSERS.get(kind)) is None:
        hint = (
            f"write '- {kind}' alone, without ':'"
            if kind in BARE_STEPS
            else _allowed_hint(str(kind), kinds)
        )
        c.error(value.key, f"unknown step kind {str(kind)!r}", hint)
        return None
    extra = {key: bf for key, bf in beside.items() if key not in misplaced}
    step = parser(c, _Field(value.value, value.key, value.at, extra), path)
    return None if misplaced else step


def _wait_step(c: _Checker, f: _Field, path: str) -> Step | None:
    """`wait: 1h` (a duration) or `wait: {until: "09:00"}` (the next such local time)."""
    if isinstance(f.value, dict):
        c.keys(f.value, f.key, "wait", ("until",), hints={"for": "for a duration write wait: 1h"})
        until = c.field(f.value, "until")
        at = _time_of_day(c, until, "wait.until") if until else None
        return WaitUntilStep(path, at) if at else None
    duration = c.duration(f, "wait")
    return WaitStep(path, duration) if duration else None


def _time_of_day(c: _Checker, f: _Field, what: str) -> time | None:
    if not isinstance(f.value, str):
        c.error(f.at, f'{what} must be a time like "09:00", not {_describe(f.value)}', _TIME_HINT)
        return None
    if (match := _TIME.fullmatch(f.value)) is None:
        hint = _TIME_HINT
        if re.fullmatch(r"[0-9]:[0-5][0-9]", f.value):
            hint = f'write the hour with two digits: "0{f.value}"'
        c.error(f.at, f"{what}: {f.value!r} is not a time of day", hint)
        return None
    return time(int(match.group(1)), int(f.value[3:]))


def _wait_for_step(c: _Checker, f: _Field, path: str) -> Step | None:
    """`wait_for: {event, when, timeout}`, with `on_timeout: [steps]` beside it (arm 0)."""
    rule = _event_rule(
        c,
        f,
        "wait_for",
        ("timeout",),
        "e.g. wait_for: {event: Order Completed, timeout: 2d}",
        {"on_timeout": "move on_timeout out of wait_for: line it up under wait_for"},
    )
    timeout = None
    if isinstance(f.value, dict):
        if (timeout_field := c.field(f.value, "timeout")) is None:
            c.error(
                f.key,
                "wait_for is missing required key 'timeout'",
                "say how long to wait at most, e.g. timeout: 2d",
            )
        else:
            timeout = c.duration(timeout_field, "wait_for.timeout")
    on_timeout: tuple[Step, ...] | None = ()
    if (steps := f.beside.get("on_timeout")) is not None:
        on_timeout = _step_list(c, steps, "on_timeout", f"{path}.0")
    if rule is None or timeout is None or on_timeout is None:
        return None
    return WaitForStep(path, rule[0], rule[1], timeout, on_timeout)


def _branch_step(c: _Checker, f: _Field, path: str) -> Step | None:
    """`branch: [{when, steps}…, {else: steps}]`; arm `i`'s steps are at `path.i.<index>`."""
    before = len(c.issues)
    hint = "write each arm as - when: <condition> with its steps:, and last - else: [steps]"
    if (items := c.sequence(f, "branch", "arms", hint)) is None:
        return None
    arms: list[BranchArm] = []
    else_index: int | None = None
    for index, item in c.items(items):
        prefix = f"{path}.{index}"
        if isinstance(item.value, dict) and "else" in item.value:
            c.keys(
                item.value,
                item.at,
                "an else arm",
                ("else",),
                hints={
                    "when": "an else arm has no condition: it runs when no other arm's holds",
                    "steps": "write the else arm's steps under else itself: - else: [steps]",
                },
            )
            if else_index is not None:
                c.error(
                    item.at,
                    f"a branch has at most one else (arm {else_index} is one already)",
                    "merge the else arms into one",
                )
            elif index < len(items) - 1:
                c.error(
                    item.at,
                    "else must be the last arm of a branch",
                    "move it to the end: the arms after else could never run",
                )
            else_index = index if else_index is None else else_index
            steps = _step_list(c, c.entry(item.value, "else"), "else", prefix)
            if steps is not None:
                arms.append(BranchArm(None, steps))
            continue
        if (arm := c.mapping(item, "a branch arm", hint)) is None:
            continue
        c.keys(arm, item.at, "a branch arm", ("when", "steps"))
        when_field = c.field(arm, "when")
        when = c.compiled(when_field, "branch.when", compile_condition) if when_field else None
        steps_field = c.field(arm, "steps")
        steps = _step_list(c, steps_field, "steps", prefix) if steps_field else None
        if when is not None and steps is not None:
            arms.append(BranchArm(when, steps))
    if len(items) == 1 and else_index == 0:
        c.error(
            f.key,
            "a branch needs at least one arm with when",
            "steps that always run need no branch: write them in the list directly",
        )
    return BranchStep(path, tuple(arms)) if len(c.issues) == before else None


def _split_step(c: _Checker, f: _Field, path: str) -> Step | None:
    """`split: [{weight, steps, name?}…, {holdout: true, weight}]`: weighted arms, whose
    weights (the holdout's included) add up to 100."""
    before = len(c.issues)
    c.splits.append((path, f.key))
    hint = "write each arm as - weight: 50 with its steps:, or - holdout: true with a weight"
    if (items := c.sequence(f, "split", "arms", hint)) is None:
        return None
    if len(items) < 2:
        c.error(
            f.key,
            "a split needs at least two arms",
            "e.g. two arms of weight 50, or an arm of weight 90 and a holdout of weight 10",
        )
    letters = _arm_names()
    arms: list[SplitArm] = []
    named: dict[str, int] = {}  # arm name → index of the arm
    weights: list[int] = []
    holdout_index: int | None = None
    for index, item in c.items(items):
        if (arm := c.mapping(item, "a split arm", hint)) is None:
            continue
        name_field = c.field(arm, "name")
        if "holdout" in arm:
            _holdout_arm(c, arm, item, holdout_index)
            holdout_index = index if holdout_index is None else holdout_index
            name: str | None = HOLDOUT
            steps: tuple[Step, ...] | None = ()
        else:
            c.keys(arm, item.at, "a split arm", ("weight", "steps"), ("name",))
            default = next(letters)
            name = _arm_name(c, name_field) if name_field else default
            steps_field = c.field(arm, "steps")
            steps = _step_list(c, steps_field, "steps", f"{path}.{index}") if steps_field else None
        weight_field = c.field(arm, "weight")
        weight = _weight(c, weight_field) if weight_field else None
        if weight is not None:
            weights.append(weight)
        if name is not None and name != HOLDOUT and name in named:
            c.error(
                name_field.at if name_field else item.at,
                f"arm name {name!r} is used twice in this split (arm {named[name]} has it too)",
                "give each arm its own name, or no name to get A, B, C… in order",
            )
        elif name is not None:
            named[name] = index
        if name is not None and weight is not None and steps is not None:
            arms.append(SplitArm(name, weight, name == HOLDOUT, steps))
    if len(weights) == len(items) and sum(weights) != 100:
        c.error(
            f.key,
            f"the split's weights add up to {sum(weights)}, not 100",
            "change the weights so that they total 100, the holdout's included",
        )
    return SplitStep(path, tuple(arms)) if len(c.issues) == before else None


def _holdout_arm(c: _Checker, arm: Any, item: _Field, holdout_index: int | None) -> None:
    """A holdout arm is `{holdout: true, weight}`: no steps, no name (it is `holdout`)."""
    if (steps := c.field(arm, "steps")) is not None:
        c.error(
            steps.key,
            "a holdout arm has no steps: the people in it receive no message from this journey",
            "remove the steps, or remove holdout: true to make it an ordinary arm",
        )
    c.keys(
        arm,
        item.at,
        "a holdout arm",
        ("holdout", "weight"),
        ("steps",),  # reported above with its own message
        {"name": f"the holdout arm is always named {HOLDOUT}"},
    )
    flag = c.field(arm, "holdout")
    if flag is not None and flag.value is not True:
        c.error(
            flag.at,
            f"holdout must be true, not {_describe(flag.value)}",
            "leave holdout out for an arm that has steps",
        )
    if holdout_index is not None:
        c.error(
            item.at,
            f"a split has at most one holdout (arm {holdout_index} is one already)",
            "merge them into one holdout arm with the sum of their weights",
        )


def _arm_name(c: _Checker, f: _Field) -> str | None:
    if (name := c.text(f, "arm name")) is None:
        return None
    if len(name) > MAX_ARM_NAME_LENGTH:
        c.error(
            f.at,
            f"arm name is {len(name)} characters long; the most is {MAX_ARM_NAME_LENGTH}",
            "use a short label such as A, B or discount_10",
        )
        return None
    if name == HOLDOUT:
        c.error(
            f.at,
            f"the name {HOLDOUT!r} is kept for the holdout arm, whose people receive nothing",
            f"choose another name, or write {HOLDOUT}: true (without steps) for a holdout",
        )
        return None
    return name


def _weight(c: _Checker, f: _Field) -> int | None:
    value = f.value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100:
        return int(value)
    hint = "write a whole number without quotes, e.g. weight: 50"
    if isinstance(value, int) and not isinstance(value, bool):
        hint = "an arm's weight is its share of people in percent; the weights total 100"
    c.error(f.at, f"weight must be a whole number from 1 to 100, not {_describe(value)}", hint)
    return None


def _arm_names() -> Iterator[str]:
    """A, B, … Z, AA, AB, …: the default names of a split's arms, in order."""
    for size in count(1):
        for letters in product(ascii_uppercase, repeat=size):
            yield "".join(letters)


def _update_profile_step(c: _Checker, f: _Field, path: str) -> Step | None:
    """`update_profile: {set: {trait: value}}`; string values are templates."""
    before = len(c.issues)
    example = "e.g. update_profile: {set: {cart_nudged: true}}"
    if (update := c.mapping(f, "update_profile", example)) is None:
        return None
    c.keys(update, f.key, "update_profile", ("set",))
    if (set_field := c.field(update, "set")) is None:
        return None
    if (traits := c.mapping(set_field, "update_profile.set", example)) is None:
        return None
    if not traits:
        c.error(set_field.at, "update_profile.set must name at least one trait", example)
    values: dict[str, Template | str | int | float | bool | None] = {}
    for key in traits:
        value = c.entry(traits, key)
        if not isinstance(key, str) or not key.strip():
            c.error(
                value.key,
                f"a trait name must be text, not {_describe(key)}",
                'write it in quotes, e.g. "2024_buyer": true',
            )
        elif isinstance(value.value, dict | list):
            c.error(
                value.at,
                f"trait {key!r} must be a single value, not {_describe(value.value)}",
                "set text, a number, true/false or null; give each trait its own key, "
                "e.g. address_city: Paris",
            )
        elif isinstance(value.value, str):
            compile = partial(compile_template, html=False)
            if value.value == "":  # an empty text is a value, not a mistake
                values[key] = compile("")
            elif (template := c.compiled(value, f"trait {key!r}", compile)) is not None:
                values[key] = template
        elif (plain := _json(c, value, f"trait {key!r}")) is not _FAILED:
            values[key] = plain
    if len(c.issues) > before:
        return None
    return UpdateProfileStep(path, MappingProxyType(values))


def _send_step(c: _Checker, f: _Field, path: str) -> Step | None:
    if (send := c.mapping(f, "send", "e.g. send: {channel: sms, text: ...}")) is None:
        return None
    channels = list(registry.CHANNEL_NAMES)
    if (channel_field := c.field(send, "channel")) is None:
        c.error(f.key, "send is missing required key 'channel'", f"one of: {', '.join(channels)}")
        return None
    if (channel := _channel(c, channel_field)) is None:
        return None
    content_keys = sorted(registry.required_content(channel))
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


def _channel(c: _Checker, f: _Field) -> str | None:
    """A channel name from the channel registry, the one list of channels."""
    if (channel := c.text(f, "channel")) is None:
        return None
    if channel not in registry.CHANNEL_NAMES:
        channels = list(registry.CHANNEL_NAMES)
        c.error(f.at, f"unknown channel {channel!r}", _allowed_hint(channel, channels))
        return None
    return channel


STEP_PARSERS: dict[str, StepParser] = {
    "wait": _wait_step,
    "wait_for": _wait_for_step,
    "branch": _branch_step,
    "split": _split_step,
    "update_profile": _update_profile_step,
    "send": _send_step,
}
BARE_STEPS: dict[str, Callable[[str], Step]] = {"exit": ExitStep}
# Keys written beside a step kind in the same list item → the one kind they go with.
BESIDE: dict[str, str] = {"on_timeout": "wait_for"}


def _one_split(c: _Checker) -> None:
    """A trip records one arm (on the trip and its deliveries) and conversions are counted per
    arm: a second split would overwrite the first one's arm, and a holdout person could be
    drawn into an arm that sends."""
    for _, where in c.splits[1:]:
        c.error(
            where,
            f"a journey has at most one split (step {c.splits[0][0]} is one)",
            "test one thing per journey: put every variant in the arms of one split",
        )


# --- tests: scenarios `carillon journeys test` plays -------------------------------------


def _scenarios(c: _Checker, f: _Field) -> tuple[Scenario, ...]:
    example = "e.g. tests: [{name: sends the reminder, events: [...], expect: [...]}]"
    if (items := c.sequence(f, "tests", "tests", example)) is None:
        return ()
    scenarios: list[Scenario] = []
    names: dict[str, int] = {}  # test name → line
    for _, item in c.items(items):
        if (scenario := _scenario(c, item, names)) is not None:
            scenarios.append(scenario)
    return tuple(scenarios)


def _scenario(c: _Checker, f: _Field, names: dict[str, int]) -> Scenario | None:
    before = len(c.issues)
    if (test := c.mapping(f, "a test", "e.g. - name: ...  with events: and expect:")) is None:
        return None
    c.keys(test, f.at, "a test", ("name", "events", "expect"), ("profile",))
    name = c.text(name_field, "test name") if (name_field := c.field(test, "name")) else None
    if name_field and name is not None and name in names:
        c.error(
            name_field.at,
            f"test name {name!r} is already used on line {names[name]}",
            "give each test its own name, so a failure says which one",
        )
    elif name_field and name is not None:
        names[name] = name_field.at[0]
    profile = _test_profile(c, pf) if (pf := c.field(test, "profile")) else {}
    events = _test_events(c, ef) if (ef := c.field(test, "events")) else None
    expect = _test_expect(c, xf) if (xf := c.field(test, "expect")) else None
    if len(c.issues) > before:
        return None
    assert name is not None and profile is not None and events is not None and expect is not None
    return Scenario(name, profile, events, expect)


def _test_profile(c: _Checker, f: _Field) -> dict[str, Any] | None:
    """The person the test plays: `traits`, `email`, `phone` (all optional)."""
    example = "e.g. profile: {traits: {first_name: Alice}, email: alice@example.com}"
    if (given := c.mapping(f, "profile", example)) is None:
        return None
    c.keys(given, f.key, "profile", (), ("traits", "email", "phone"))
    profile: dict[str, Any] = {}
    traits = c.field(given, "traits")
    if traits is not None and c.mapping(traits, "traits", example) is not None:
        profile["traits"] = _json(c, traits, "traits")
    if (email := c.field(given, "email")) is not None:
        profile["email"] = c.text(email, "email")
    if (phone := c.field(given, "phone")) is not None:
        hint = 'write the number in quotes, e.g. "+33612345678"'
        profile["phone"] = c.text(phone, "phone", hint)
    return profile


def _test_events(c: _Checker, f: _Field) -> tuple[ScenarioEvent, ...] | None:
    """Track events, at times counted from the first one (at 0s), in time order."""
    example = "e.g. - {at: 0s, event: Cart Abandoned, properties: {total: 42.5}}"
    if (items := c.sequence(f, "events", "events", example)) is None:
        return None
    events: list[ScenarioEvent] = []
    previous: tuple[timedelta, str] | None = None
    for _, item in c.items(items):
        if (given := c.mapping(item, "a test event", example)) is None:
            continue
        c.keys(given, item.at, "a test event", ("at", "event"), ("properties",))
        at = c.offset(af, "at") if (af := c.field(given, "at")) else None
        if af is not None and at is not None:
            if previous is None and at:
                c.error(
                    af.at,
                    f"the first event is at {af.value}: times count from the first event",
                    "write at: 0s for the first event",
                )
            elif previous is not None and at < previous[0]:
                c.error(
                    af.at,
                    f"events must be listed in time order: {af.value} comes before "
                    f"the previous event's {previous[1]}",
                    "list the events in the order they happen",
                )
            previous = (at, str(af.value))
        name = c.text(nf, "event") if (nf := c.field(given, "event")) else None
        properties: Any = {}
        if (pf := c.field(given, "properties")) is not None and c.mapping(
            pf, "properties", example
        ):
            properties = _json(c, pf, "properties")
        if at is not None and name is not None and properties is not _FAILED:
            payload = {"type": "track", "event": name, "properties": properties}
            events.append(ScenarioEvent(at, payload))
    return tuple(events) if len(events) == len(items) else None


def _test_expect(c: _Checker, f: _Field) -> tuple[ExpectedSend, ...] | None:
    """The messages expected, in any order; `expect: []` means nothing is sent."""
    example = "e.g. - {at: 1h, channel: email, contains: {subject: Alice}}"
    if (items := c.sequence(f, "expect", "expected messages", example, empty=True)) is None:
        return None
    expected: list[ExpectedSend] = []
    for _, item in c.items(items):
        if (given := c.mapping(item, "an expected message", example)) is None:
            continue
        before = len(c.issues)
        c.keys(given, item.at, "an expected message", ("channel",), ("at", "contains"))
        at = c.offset(af, "at") if (af := c.field(given, "at")) else None
        channel = _channel(c, cf) if (cf := c.field(given, "channel")) else None
        contains: dict[str, str] = {}
        cf = c.field(given, "contains")
        if cf is not None and (wanted := c.mapping(cf, "contains", example)) is not None:
            if channel is not None:
                fields = sorted(registry.required_content(channel))
                c.keys(wanted, cf.key, f"contains ({channel})", (), fields)
            for key in wanted:
                value = c.entry(wanted, key)
                text = c.text(value, f"contains.{key}")
                if text is not None:
                    contains[str(key)] = text
        if len(c.issues) == before and channel is not None:
            expected.append(ExpectedSend(at, channel, MappingProxyType(contains)))
    return tuple(expected) if len(expected) == len(items) else None


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
        f"not {_describe(value)}",
        f"write it in quotes to make it text{example}",
    )
    return _FAILED
