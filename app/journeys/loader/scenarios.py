"""The `tests:` scenarios `carillon journeys test` plays, checked with the rest of the file so
a broken test is reported at its line and column before anything runs.
"""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType
from typing import Any

from app.journeys.definition import ExpectedSend, Scenario, ScenarioEvent
from app.journeys.language.checks import name_used, out_of_order
from app.journeys.loader.checker import _FAILED, _Checker, _Field, _json
from app.journeys.loader.messages import _channel
from channels import registry


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
        c.error(name_field.at, *name_used(name, names[name]))
    elif name_field and name is not None:
        names[name] = name_field.at[0]
    profile = _test_profile(c, pf) if (pf := c.field(test, "profile")) else {}
    events = _test_events(c, ef) if (ef := c.field(test, "events")) else None
    expect = _test_expect(c, xf) if (xf := c.field(test, "expect")) else None
    if len(c.issues) > before:
        return None
    if name is None or profile is None or events is None or expect is None:
        raise RuntimeError(f"{c.file}: a test part was neither parsed nor reported")
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
                c.error(af.at, *out_of_order(str(af.value), previous[1]))
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
