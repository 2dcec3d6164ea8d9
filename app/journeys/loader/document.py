"""The journey file as a whole: reading it, its top-level keys (id, trigger, exit_when,
re_entry, goal, enabled, the send policy) and the checks that span its parts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from app.journeys.conditions import compile_condition
from app.journeys.definition import Cap, ExitWhen, Goal, Journey, ReEntry, Trigger, parse_cap
from app.journeys.language.checks import SegmentChannels, revenue_problem, unreachable_goal
from app.journeys.language.document import KINDS, ON_CAP
from app.journeys.language.values import ID_PATTERN, MAX_ID_LENGTH
from app.journeys.loader import segment_trigger
from app.journeys.loader.budgets import _budget, check_fallback
from app.journeys.loader.checker import JourneyInvalid, _Checker, _event_rule, _Field
from app.journeys.loader.messages import _channel, _messages, check_preferred
from app.journeys.loader.scenarios import _scenarios
from app.journeys.loader.splits import _one_split, _winner_needs_goal
from app.journeys.loader.steps import _step_list
from app.yamlfiles.issues import FileInvalid, Issue
from app.yamlfiles.positions import START, Pos
from app.yamlfiles.reading import parse_yaml, read_text
from app.yamlfiles.wording import allowed_hint, describe

_SLUG = re.compile(ID_PATTERN)


# --- public API ----------------------------------------------------------------------------


def parse_journey(text: str, file: str, segments: SegmentChannels | None = None) -> Journey:
    """Parse one journey file's text; raise `JourneyInvalid` with all its issues. With
    `segments`, a `channel: preferred` send is also checked against their channels (a
    version read back from the database is not: the segments may have changed since)."""
    return _parse(text, file, segments)[0]


def load_directory(
    path: Path, segments: SegmentChannels | None = None
) -> tuple[list[Journey], list[Issue]]:
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
            journey, id_pos = _parse(_read(file), str(file), segments)
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


def load_path(
    path: Path, segments: SegmentChannels | None = None
) -> tuple[list[Journey], list[Issue]]:
    """A single journey file, or a directory of them."""
    if path.is_dir():
        return load_directory(path, segments)
    try:
        return [parse_journey(_read(path), str(path), segments)], []
    except JourneyInvalid as exc:
        return [], exc.issues


def _read(path: Path) -> str:
    try:
        return read_text(path)
    except FileInvalid as exc:
        raise JourneyInvalid(exc.issues) from None


# --- the journey document ------------------------------------------------------------------


def _parse(text: str, file: str, segments: SegmentChannels | None) -> tuple[Journey, Pos]:
    """The journey, and where its id is written (for duplicate-id issues)."""
    c = _Checker(file, text)
    try:
        data = parse_yaml(text, file)
    except FileInvalid as exc:
        raise JourneyInvalid(exc.issues) from None
    if not isinstance(data, dict):
        c.error(START, "a journey file must be a mapping with id, name, trigger and steps")
        raise JourneyInvalid(c.issues)
    c.keys(
        data,
        START,
        "the journey",
        ("id", "name", "trigger", "steps"),
        ("description", "enabled", "exit_when", "re_entry", "goal", "tests", "messages")
        + POLICY_KEYS,
    )
    id_field = c.field(data, "id")
    journey_id = _journey_id(c, id_field) if id_field else None
    name = c.text(f, "name") if (f := c.field(data, "name")) else None
    if f := c.field(data, "description"):
        c.text(f, "description")
    enabled = _enabled(c, c.field(data, "enabled"))
    trigger = segment_trigger.trigger(c, f) if (f := c.field(data, "trigger")) else None
    exit_when = _event_rule(c, f, "exit_when") if (f := c.field(data, "exit_when")) else None
    re_entry = _re_entry(c, c.field(data, "re_entry"))
    policy = _send_policy(c, data)
    goal_field = c.field(data, "goal")
    goal = _goal(c, goal_field) if goal_field else None
    messages = _messages(c, f) if (f := c.field(data, "messages")) else {}  # before the steps
    steps = _step_list(c, f, "steps", "") if (f := c.field(data, "steps")) else None
    _one_split(c)
    _winner_needs_goal(c, goal_field.key if goal_field else None, goal)
    if goal_field and goal and exit_when and exit_when == (goal.event, None):
        c.error(goal_field.key, *unreachable_goal(goal.event))
    if (f := c.field(data, "budget")) and policy.get("budget") and steps:
        check_fallback(c, f, policy["budget"], steps, messages)
    tests = _scenarios(c, f) if (f := c.field(data, "tests")) else ()
    if segments is not None:
        check_preferred(c, segments, trigger[2] if trigger else None)
    if c.issues:
        raise JourneyInvalid(sorted(c.issues, key=lambda issue: (issue.line, issue.column)))
    if not (id_field and journey_id and name and trigger and re_entry and steps):
        # Each of these reported an issue when missing, so this is a checker bug.
        raise RuntimeError(f"{c.file}: a required part was neither parsed nor reported")
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
        messages=MappingProxyType(messages),
        **policy,
    )
    return journey, id_field.at


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
        f"enabled must be true or false, not {describe(f.value)}",
        "write enabled: true or enabled: false, without quotes",
    )
    return True


def _re_entry(c: _Checker, f: _Field | None) -> ReEntry | None:
    if f is None or f.value in ("never", "always"):
        return ReEntry("always" if f and f.value == "always" else "never", None)
    if not isinstance(f.value, dict):
        c.error(
            f.at,
            f"re_entry must be never, always or a cooldown, not {describe(f.value)}",
            "write re_entry: never, re_entry: always, or re_entry: {cooldown: 7d}",
        )
        return None
    c.keys(f.value, f.key, "re_entry", ("cooldown",))
    cooldown = c.field(f.value, "cooldown")
    duration = c.duration(cooldown, "re_entry.cooldown") if cooldown else None
    return ReEntry("cooldown", duration) if duration else None


# What a journey's messages obey at send time (docs/delivery.md); all optional.
POLICY_KEYS = ("kind", "priority", "on_cap", "caps", "budget")
_CAP_HINT = 'write count/duration, e.g. caps: {email: ["1/24h", "3/7d"]}'


def _send_policy(c: _Checker, data: Any) -> dict[str, Any]:
    """`kind`, `priority`, `on_cap`, `caps` and `budget`, as Journey fields (only those
    written)."""
    policy: dict[str, Any] = {}
    if (f := c.field(data, "kind")) is not None:
        hint = "transactional: messages the person asked for (receipts), never capped or held"
        policy["kind"] = _choice(c, f, "kind", KINDS, hint)
    if (f := c.field(data, "priority")) is not None:
        if isinstance(f.value, int) and not isinstance(f.value, bool):
            policy["priority"] = int(f.value)
        else:
            c.error(
                f.at,
                f"priority must be a whole number, not {describe(f.value)}",
                "e.g. priority: 10; the higher wins a person's last capped slot (default 0)",
            )
    if (f := c.field(data, "on_cap")) is not None:
        hint = "defer: send once the cap allows (default); drop: do not send this message"
        policy["on_cap"] = _choice(c, f, "on_cap", ON_CAP, hint)
    if (f := c.field(data, "caps")) is not None:
        policy["caps"] = _caps(c, f)
    if (f := c.field(data, "budget")) is not None:
        policy["budget"] = _budget(c, f)
    if policy.get("kind") == "transactional":
        for key, held in (("on_cap", "capped"), ("caps", "capped"), ("budget", "held by a budget")):
            if (f := c.field(data, key)) is not None:
                c.error(
                    f.key,
                    f"{key} has no effect: a transactional journey is never {held}",
                    "remove it, or make the journey kind: marketing",
                )
    return {key: value for key, value in policy.items() if value is not None}


def _choice(c: _Checker, f: _Field, what: str, allowed: tuple[str, ...], hint: str) -> Any:
    if isinstance(f.value, str) and f.value in allowed:
        return str(f.value)
    close = allowed_hint(str(f.value), list(allowed)) if isinstance(f.value, str) else hint
    c.error(f.at, f"{what} must be {' or '.join(allowed)}, not {describe(f.value)}", close)
    return None


def _caps(c: _Checker, f: _Field) -> Mapping[str, tuple[Cap, ...]] | None:
    """`{channel: "1/24h"}` or `{channel: ["1/24h", "3/7d"]}`; `[]`: this journey uncapped."""
    if (caps := c.mapping(f, "caps", _CAP_HINT)) is None:
        return None
    parsed: dict[str, tuple[Cap, ...]] = {}
    for key in caps:
        value = c.entry(caps, key)
        channel = _channel(c, _Field(key, value.key, value.key))
        if isinstance(value.value, str):
            rules = [value]
        elif (seq := c.sequence(value, f"caps.{key}", "caps", _CAP_HINT, empty=True)) is not None:
            rules = [item for _, item in c.items(seq)]
        else:
            continue
        found = []
        for rule in rules:
            if (text := c.text(rule, f"caps.{key}", _CAP_HINT)) is None:
                continue
            try:
                found.append(parse_cap(text))
            except ValueError as exc:
                c.error(rule.at, f"caps.{key}: {exc}", _CAP_HINT)
        if channel is not None and len(found) == len(rules):
            parsed[channel] = tuple(found)
    return MappingProxyType(parsed)


_VALUE_HINT = "e.g. value: event.properties.total, currency: EUR"


def _goal(c: _Checker, f: _Field) -> Goal | None:
    example = "e.g. goal: {event: Order Completed, within: 7d}"
    rule = _event_rule(c, f, "goal", ("within", "value", "currency"), example)
    fields = f.value if isinstance(f.value, dict) else {}
    within_field = c.field(fields, "within")
    within = c.duration(within_field, "goal.within") if within_field else None
    value_field, currency_field = c.field(fields, "value"), c.field(fields, "currency")
    value = (
        c.compiled(value_field, "goal.value", compile_condition, _VALUE_HINT)
        if value_field
        else None
    )
    currency = _currency(c, currency_field) if currency_field else None
    if value_field is not None and currency_field is None:
        c.error(value_field.key, "goal has a value but no currency", _VALUE_HINT)
    if currency_field is not None and value_field is None:
        c.error(currency_field.key, "goal has a currency but no value", _VALUE_HINT)
    broken = (within_field and within is None) or (value_field and value is None)
    if rule is None or broken or (currency_field is not None and currency is None):
        return None
    return Goal(rule[0], rule[1], within, value, currency)


def _currency(c: _Checker, f: _Field) -> str | None:
    text = c.text(f, "goal.currency", _VALUE_HINT)
    if text is not None and (len(text) != 3 or not text.isascii() or not text.isupper()):
        c.error(f.at, f"goal.currency must be an ISO 4217 code such as EUR or USD, not {text!r}")
        return None
    if text is not None and (problem := revenue_problem(text)) is not None:
        c.error(f.at, *problem)
        return None
    return text
