"""`goal:` and the `tests:` block a journey file carries for `carillon journeys test`."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from app.journeys.definition import (
    ExpectedSend,
    Goal,
    Journey,
    Scenario,
    ScenarioEvent,
    SendStep,
)
from app.journeys.language.files import Issue, JourneyInvalid, load_directory, parse_journey

SHIPPED = Path(__file__).resolve().parents[2] / "journeys"
HEAD = "id: demo\nname: Demo\ntrigger:\n  event: Signed Up\nsteps: [exit]\n"  # lines 1-5


def parse(text: str) -> Journey:
    return parse_journey(HEAD + textwrap.dedent(text), "j.yaml")


def issues_of(text: str) -> list[Issue]:
    with pytest.raises(JourneyInvalid) as info:
        parse(text)
    return info.value.issues


def found(text: str) -> list[tuple[tuple[int, int], str]]:
    return [((i.line, i.column), i.message) for i in issues_of(text)]


# --- goal -----------------------------------------------------------------------------------


def test_goal() -> None:
    journey = parse(
        "goal:\n  event: Order Completed\n  when: event.properties.total > 0\n  within: 7d\n"
    )
    assert journey.goal is not None
    assert (journey.goal.event, journey.goal.within) == ("Order Completed", timedelta(days=7))
    assert journey.goal.when is not None
    assert journey.goal.when.evaluate({"event": {"properties": {"total": 5}}, "profile": {}})


def test_goal_is_optional_and_within_too() -> None:
    assert parse("").goal is None
    assert parse("goal: {event: Order Completed}\n").goal == Goal("Order Completed", None, None)


def test_goal_mistakes() -> None:
    assert found("goal:\n  evnt: Order Completed\n  within: 1 week\n  when: event.total >\n") == [
        ((6, 1), "goal is missing required key 'event'"),
        ((7, 3), "unknown key 'evnt' in goal"),
        ((8, 11), "goal.within: '1 week' is not a duration like 30s, 15m, 1h or 7d"),
        ((9, 21), "goal.when: condition ends too early"),
    ]
    assert found("goal: Order Completed\n") == [
        ((6, 7), "goal must be a mapping of keys, not 'Order Completed'")
    ]


def test_goal_value_and_currency() -> None:
    goal = parse(
        "goal:\n  event: Order Completed\n  value: event.properties.total\n  currency: EUR\n"
    ).goal
    assert goal is not None and goal.currency == "EUR" and goal.value is not None
    order = {"event": {"properties": {"total": 42.5}}, "profile": {}}
    assert goal.value.number(order) == 42.5


def test_goal_value_mistakes() -> None:
    assert found("goal:\n  event: Order Completed\n  value: event.properties.total\n") == [
        ((8, 3), "goal has a value but no currency")
    ]
    assert found("goal:\n  event: Order Completed\n  currency: EUR\n") == [
        ((8, 3), "goal has a currency but no value")
    ]
    assert found(
        "goal:\n  event: Order Completed\n  value: event.properties.total +\n  currency: euro\n"
    ) == [
        ((8, 33), "goal.value: condition ends too early"),
        ((9, 13), "goal.currency must be an ISO 4217 code such as EUR or USD, not 'euro'"),
    ]


def test_a_goal_that_exit_when_always_pre_empts() -> None:
    [issue] = issues_of("exit_when: {event: Order Completed}\ngoal: {event: Order Completed}\n")
    assert (issue.line, issue.column) == (7, 1)
    assert issue.message == (
        "the goal cannot be reached during a trip: 'Order Completed' is also the exit_when "
        "event, and exit_when is checked first"
    )
    assert issue.hint == "remove exit_when: reaching the goal already ends the trip (as converted)"
    # With its own condition, exit_when only takes some of those events: allowed.
    parse(
        "exit_when: {event: Order Completed, when: event.properties.total == 0}\n"
        "goal: {event: Order Completed}\n"
    )


# --- tests: ---------------------------------------------------------------------------------

ISSUE_EXAMPLE = """\
tests:
  - name: reminder one hour after the cart
    profile: {traits: {first_name: Alice}, email: alice@example.com, phone: "+33612345678"}
    events:
      - {at: 0s, event: Cart Abandoned, properties: {total: 42.5, cart_url: "https://shop.example/c/1"}}
    expect:
      - {at: 1h, channel: email, contains: {subject: "Alice"}}
  - name: no reminder after an order
    events:
      - {at: 0s, event: Cart Abandoned, properties: {total: 42.5}}
      - {at: 30m, event: Order Completed}
    expect: []
"""


def test_the_issue_example() -> None:
    reminder, ordered = parse(ISSUE_EXAMPLE).tests
    assert reminder == Scenario(
        name="reminder one hour after the cart",
        profile={
            "traits": {"first_name": "Alice"},
            "email": "alice@example.com",
            "phone": "+33612345678",
        },
        events=(
            ScenarioEvent(
                timedelta(0),
                {
                    "type": "track",
                    "event": "Cart Abandoned",
                    "properties": {"total": 42.5, "cart_url": "https://shop.example/c/1"},
                },
            ),
        ),
        expect=(ExpectedSend(timedelta(hours=1), "email", {"subject": "Alice"}),),
    )
    assert ordered.profile == {}
    assert [(e.at, e.event["event"], e.event["properties"]) for e in ordered.events] == [
        (timedelta(0), "Cart Abandoned", {"total": 42.5}),
        (timedelta(minutes=30), "Order Completed", {}),
    ]
    assert ordered.expect == ()


def test_scenario_data_is_plain_json() -> None:
    """The runner posts events and profiles as JSON: no YAML node types may leak through."""
    [scenario] = parse(
        "tests:\n  - name: t\n"
        "    profile: {traits: {tags: [a, {b: 1}], score: 1_000, vip: true, none: null}}\n"
        "    events:\n"
        "      - {at: 0m, event: X, properties: {items: [{sku: A1, qty: 2, price: 9.5}]}}\n"
        "    expect: [{channel: sms}]\n"
    ).tests
    event = scenario.events[0].event
    assert json.loads(json.dumps(event)) == event
    assert json.loads(json.dumps(scenario.profile)) == scenario.profile
    item = event["properties"]["items"][0]
    assert [type(v) for v in item.values()] == [str, int, float]
    assert type(event["properties"]) is dict and type(event["properties"]["items"]) is list
    traits = scenario.profile["traits"]
    assert traits == {"tags": ["a", {"b": 1}], "score": 1000, "vip": True, "none": None}
    assert type(traits["score"]) is int
    assert scenario.events[0].at == timedelta(0)  # 0m is zero too
    assert scenario.expect == (ExpectedSend(None, "sms", {}),)  # no time: any time


def test_the_shipped_journeys_carry_their_tests() -> None:
    journeys, issues = load_directory(SHIPPED)
    assert issues == []
    tests = {j.id: j.tests for j in journeys}

    reminder, ordered, small, bad_link = tests["cart-abandonment"]
    [sent] = reminder.expect
    assert (sent.at, sent.channel) == (timedelta(hours=1), "email")
    assert sent.contains == {"subject": "Alice", "text": "PANIER10"}
    assert reminder.profile["traits"] == {"first_name": "Alice"}
    assert [e.event["event"] for e in ordered.events] == ["Cart Abandoned", "Order Completed"]
    assert ordered.events[1].at < timedelta(hours=1) and ordered.expect == ()
    assert small.events[0].event["properties"]["total"] < 20 and small.expect == ()
    assert bad_link.events[0].event["properties"]["cart_url"].startswith("javascript:")
    assert bad_link.expect == ()

    welcome, not_opted_in = tests["newsletter-welcome"]
    assert [(s.channel, dict(s.contains)) for s in welcome.expect] == [
        ("sms", {"text": "BIENVENUE15"})
    ]
    assert welcome.profile["phone"].startswith("+")
    assert welcome.profile["traits"]["sms_opt_in"] is True
    assert "sms_opt_in" not in not_opted_in.profile["traits"] and not_opted_in.expect == ()

    [liked] = tests["instagram-retarget"]
    assert [(s.channel, dict(s.contains)) for s in liked.expect] == [
        ("meta_audience", {"audience_id": "23850000000000001"})
    ]


def test_the_shipped_expectations_match_what_the_templates_render() -> None:
    """The `contains` texts are really in the messages the shipped steps render."""
    journeys, _ = load_directory(SHIPPED)
    for journey in journeys:
        sends = [step for step in journey.steps if isinstance(step, SendStep)]
        for scenario in journey.tests:
            variables = {
                "event": {**scenario.events[0].event, "timestamp": "2026-01-05T09:00:00Z"},
                "profile": {"id": "p1", **scenario.profile},
            }
            for expected in scenario.expect:
                [send] = [s for s in sends if s.channel == expected.channel]
                for field, text in expected.contains.items():
                    assert text in send.content[field].render(variables)


def test_test_block_mistakes() -> None:
    issues = issues_of(
        "tests:\n"
        "  - name: first\n"  # 7
        "    profile: {phone: +33612345678, emial: a@b.c}\n"  # 8
        "    events:\n"
        "      - {at: 5m, event: Cart Abandoned}\n"  # 10
        "      - {at: 1m, event: X, properties: {when: 2026-01-31}}\n"  # 11
        "      - {event: Y}\n"  # 12
        "    expected: []\n"  # 13
        "  - name: first\n"  # 14
        "    events: []\n"  # 15
        "    expect:\n"
        "      - {channel: mail}\n"  # 17
        "      - {channel: sms, at: 1 hour, contains: {subject: Hi, text: 42}}\n"  # 18
        "  - events: [{at: 0s, event: X, properties: [1]}]\n"  # 19
        "    expect: {channel: sms}\n"  # 20
    )
    # Each value named by its path (`tests[1].expect[0]`); what is checked across a test
    # (the first event at 0s, the order of the events, a name used twice) once the file is
    # otherwise valid.
    assert [((i.line, i.column), i.message) for i in issues] == [
        ((7, 5), "tests[0] is missing required key 'expect'"),
        ((8, 22), "tests[0].profile.phone must be text, not the number 33612345678"),
        ((8, 36), "unknown key 'emial' in tests[0].profile"),
        (
            (11, 47),
            "tests[0].events[1].properties.when must be text, a number, true/false, null, a "
            "list or a mapping, not the date 2026-01-31",
        ),
        ((12, 9), "tests[0].events[2] is missing required key 'at'"),
        ((13, 5), "unknown key 'expected' in tests[0]"),
        ((15, 13), "tests[1].events must not be empty"),
        ((17, 19), "unknown channel 'mail'"),
        (
            (18, 28),
            "tests[1].expect[1].at: '1 hour' is not a duration like 30s, 15m, 1h or 7d; did you "
            "mean '1h'?",
        ),
        ((18, 47), "unknown key 'subject' in tests[1].expect[1].contains"),
        ((18, 66), "tests[1].expect[1].contains.text must be text, not the number 42"),
        ((19, 5), "tests[2] is missing required key 'name'"),
        ((19, 45), "tests[2].events[0].properties must be a mapping of keys, not a list"),
        ((20, 13), "tests[2].expect must be a list, not a mapping"),
    ]
    hints = {i.message: i.hint for i in issues}
    assert hints["tests[0].profile.phone must be text, not the number 33612345678"] == (
        'write it in quotes: "33612345678"'
    )
    assert hints["unknown key 'expected' in tests[0]"] == (
        "did you mean 'expect'? allowed: name, profile, events, expect"
    )
    assert hints["unknown channel 'mail'"] == (
        "did you mean 'email'? allowed: email, sms, whatsapp, meta_audience, meta_capi, webhook"
    )
    assert hints["unknown key 'subject' in tests[1].expect[1].contains"] == "allowed: text"
    issues = issues_of(
        "tests:\n"
        "  - name: first\n"  # 7
        "    events:\n"
        "      - {at: 5m, event: Cart Abandoned}\n"  # 9
        "    expect: []\n"
    )
    assert [((i.line, i.column), i.message) for i in issues] == [
        ((7, 5), "tests[0]: the first event is at 0s: times count from the first event"),
    ]
    issues = issues_of(
        "tests:\n"
        "  - name: first\n"  # 7
        "    events: [{at: 0s, event: A}, {at: 5m, event: B}, {at: 1m, event: C}]\n"  # 8
        "    expect: []\n"
        "  - name: first\n"  # 10
        "    events: [{at: 0s, event: A}]\n"
        "    expect: []\n"
    )
    assert [((i.line, i.column), i.message) for i in issues] == [
        ((8, 59), "events must be listed in time order: 1m comes before the previous event's 5m"),
        ((10, 11), "test name 'first' is already used on line 7"),
    ]


def test_tests_must_be_a_list_of_mappings() -> None:
    assert found("tests: reminder\n") == [
        ((6, 8), "tests must be a non-empty list of tests, not 'reminder'")
    ]
    assert found("tests:\n  - reminder\n") == [
        ((7, 5), "tests[0] must be a mapping of keys, not 'reminder'")
    ]
