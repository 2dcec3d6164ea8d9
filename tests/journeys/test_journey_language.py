"""The journey language, described once by its models: a file is validated through them,
compiled to the runtime's definitions and checked across its parts. Every shipped journey,
example and docs snippet loads, every part of the language compiles to what the runtime
runs, and each family of mistakes (inside a text, across parts) is placed and worded."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from app.journeys.language.files import Issue, JourneyInvalid, parse_journey
from app.yamlfiles import parse_yaml
from tests.helpers import HEAD, WELCOME

REPO = Path(__file__).resolve().parents[2]
FILES = sorted([*(REPO / "journeys").glob("*.yaml"), *(REPO / "docs" / "examples").glob("*.yaml")])

TOP = "id: demo\nname: Demo\ntrigger:\n  event: Signed Up\n"
PARTS = {
    "every step kind": (
        "steps:\n"
        "  - wait: 1h\n"
        '  - wait: {until: "09:00"}\n'
        "  - wait_for: {event: Clicked, when: 'event.properties.n > 1', timeout: 2d}\n"
        "    on_timeout:\n      - send: {channel: sms, text: 'Hi {{ profile.traits.name }}'}\n"
        "  - branch:\n      - when: 'profile.traits.vip == true'\n        steps: [wait: 1d]\n"
        "      - else: [exit]\n"
        "  - update_profile: {set: {nudged: true, score: 3, ratio: 0.5,"
        " note: 'x {{ event.event }}', empty: '', none: null}}\n"
        '  - send: {channel: meta_audience, audience_id: "123", remove_on_exit: true}\n'
    ),
    "a split with names and a holdout": (
        "steps:\n  - split:\n      - weight: 40\n        steps: [wait: 1h]\n"
        "      - weight: 40\n        name: big\n        steps: [wait: 2h]\n"
        "      - weight: 10\n        steps: [exit]\n      - holdout: true\n        weight: 10\n"
    ),
    "the policy, goal, re-entry and exit": (
        "steps: [exit]\nkind: marketing\npriority: -2\non_cap: drop\n"
        'caps: {email: ["1/24h", 3/7d], sms: 2/1d, whatsapp: []}\n'
        "re_entry: {cooldown: 7d}\nexit_when: {event: Unsubscribed}\nenabled: false\n"
        "goal: {event: Order Completed, when: 'event.properties.total > 0', within: 7d,"
        " value: event.properties.total, currency: EUR}\n"
    ),
    "tests": (
        "steps:\n  - wait: 1h\n  - send: {channel: sms, text: Hi}\ntests:\n"
        "  - name: sends\n    profile: {traits: {name: Al}, phone: '+33612345678'}\n"
        "    events: [{at: 0s, event: Signed Up, properties: {n: [1, 2]}}, {at: 30m, event: X}]\n"
        "    expect: [{at: 1h, channel: sms, contains: {text: Hi}}, {channel: sms}]\n"
        "  - name: nothing\n    events: [{at: 0s, event: Y}]\n    expect: []\n"
    ),
    "re_entry always": "steps: [exit]\nre_entry: always\n",
    "a budget that skips": "steps: [exit]\nbudget: {amount: 0.5 EUR, per: week, on_budget: skip}\n",
    "only what a budget does": "steps: [exit]\nbudget: {on_budget: wait}\n",
}


# What each part compiles to, as the runtime's definitions print.
COMPILED = {
    "every step kind": [
        "WaitStep(path='0', duration=datetime.timedelta(seconds=3600))",
        "WaitUntilStep(path='1', at=datetime.time(9, 0))",
        "WaitForStep(path='2', event='Clicked'",
        "BranchStep(path='3'",
        "UpdateProfileStep(path='4'",
        "SendStep(path='5', channel='meta_audience'",
    ],
    "a split with names and a holdout": [
        "SplitArm(name='A', weight=40",
        "SplitArm(name='big', weight=40",
        "SplitArm(name='C', weight=10",  # a named arm takes its letter too
        "SplitArm(name='holdout', weight=10, holdout=True",
    ],
    "the policy, goal, re-entry and exit": [
        "kind='marketing', priority=-2, on_cap='drop'",
        "ReEntry(mode='cooldown', cooldown=datetime.timedelta(days=7))",
        "exit_when=ExitWhen(event='Unsubscribed'",
        "enabled=False",
        "currency='EUR'",
    ],
    "tests": ["Scenario(name='sends'", "Scenario(name='nothing'"],
    "re_entry always": ["ReEntry(mode='always', cooldown=None)"],
    "a budget that skips": [
        "BudgetPolicy(limit=Budget(amount=0.5, currency='EUR', period='week'), on_budget='skip'"
    ],
    "only what a budget does": ["BudgetPolicy(limit=None, on_budget='wait'"],
}


def issues(text: str, segments: dict[str, tuple[str, ...]] | None = None) -> list[Issue]:
    with pytest.raises(JourneyInvalid) as info:
        parse_journey(text, "j.yaml", segments)
    return info.value.issues


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_shipped_journey_loads(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    journey = parse_journey(text, str(path))
    assert journey.id == parse_yaml(text, str(path))["id"] and journey.steps


@pytest.mark.parametrize("name", list(PARTS))
def test_every_part_of_the_language_compiles_to_the_runtime_definitions(name: str) -> None:
    compiled = repr(parse_journey(TOP + PARTS[name], "j.yaml"))
    for fragment in COMPILED[name]:
        assert fragment in compiled


def test_messages_compile_to_their_versions_per_locale() -> None:
    compiled = repr(parse_journey(HEAD + WELCOME, "j.yaml"))
    assert "Versions(" in compiled and "'fr-CA': Variant(" in compiled


def test_a_budget_falling_back_to_a_variant_compiles() -> None:
    budget = "budget:\n  amount: 20EUR\n  per: day\n  on_budget:\n    fallback: email\n"
    compiled = repr(parse_journey(HEAD + WELCOME + budget, "j.yaml"))
    assert "BudgetPolicy(limit=Budget(amount=20.0, currency='EUR', period='day')" in compiled
    assert "on_budget='fallback', fallback='email'" in compiled


def test_the_docs_snippets_load() -> None:
    text = (REPO / "docs" / "journeys.md").read_text(encoding="utf-8")
    snippets = [s.split("```", 1)[0] for s in text.split("```yaml\n")[1:]]
    journeys = [
        TOP + s if s.startswith("steps:") else s
        for s in snippets
        if s.startswith(("id:", "steps:"))
    ]
    assert len(journeys) >= 8
    for snippet in journeys:
        assert parse_journey(textwrap.dedent(snippet), "docs.yaml").steps


# Mistakes inside a condition's or a template's text, and literal content over a channel's
# limit: the checks a schema cannot express, made by the models' validators.
INSIDE = {  # name: (file after TOP, (line, column, message))
    "an exit condition": "steps: [exit]\nexit_when: {event: X, when: 'a +'}\n",
    "a goal's value": "steps: [exit]\n"
    "goal: {event: X, value: 'event.properties.', currency: EUR}\n",
    "a branch condition": "steps:\n  - branch:\n      - when: 'profile.traits.vip ==='\n"
    "        steps: [exit]\n",
    "a wait_for condition": "steps:\n  - wait_for: {event: X, when: 'nope(1)', timeout: 1d}\n",
    "a trait's template": "steps:\n  - update_profile: {set: {x: 'a {{ profile. }}'}}\n",
    "a message's template": "messages:\n  m:\n    sms:\n      text: 'Hi {{ profile.traits.n }'\n"
    "steps:\n  - send: {channel: sms, message: m}\n",
    "an unsafe link in a block": "messages:\n  m:\n    email:\n      subject: Hi\n"
    '      html: |\n        <p>Hi</p>\n        <a href="javascript:alert(1)">x</a>\n'
    "steps:\n  - send: {channel: email, message: m}\n",
    "a literal SMS over max_segments": "messages:\n  m:\n    sms:\n"
    f"      text: {'x' * 161}\n      max_segments: 1\n"
    "steps:\n  - send: {channel: sms, message: m}\n",
}


PLACED = {
    "an exit condition": (6, 32, "exit_when.when: condition ends too early"),
    "a goal's value": (6, 42, "goal.value: condition ends too early"),
    "a branch condition": (7, 37, "branch.when: unexpected character '=' in condition"),
    "a wait_for condition": (6, 33, "wait_for.when: unknown function 'nope' in condition"),
    "a trait's template": (6, 32, "trait 'x': expected name or number"),
    "a message's template": (8, 14, "messages.m.sms.text: unexpected '}'"),
    "an unsafe link in a block": (
        11,
        18,
        "messages.m.email.html: <a href> uses the javascript: scheme; links may only use "
        "http, https, mailto, tel",
    ),
    "a literal SMS over max_segments": (
        8,
        13,
        "messages.m.sms.text: the SMS is GSM-7, 161 characters, 2 segments; max_segments is 1",
    ),
}


@pytest.mark.parametrize("name", list(INSIDE))
def test_a_mistake_inside_a_text_is_placed_at_its_character(name: str) -> None:
    [issue] = issues(TOP + INSIDE[name])
    assert (issue.line, issue.column, issue.message) == PLACED[name]


# Mistakes across parts of a valid-looking journey: one pass over the compiled journey.
SPLIT = "  - split:\n      - weight: 50\n        steps: [wait: 1h]\n" + (
    "      - weight: {}\n        steps: [wait: 1h]\n"
)
MESSAGE = "messages:\n  welcome:\n    sms: {text: Hi}\n"
ACROSS = {
    "a step after exit": "steps:\n  - exit\n  - wait: 1h\n  - wait: 2h\n",
    "a step after a branch whose arms all exit": "steps:\n  - branch:\n"
    "      - when: 'profile.traits.vip == true'\n        steps: [wait: 1h, exit]\n"
    "      - else: [exit]\n  - wait: 1h\n",
    "a step after exit in on_timeout": "steps:\n  - wait_for: {event: X, timeout: 1d}\n"
    "    on_timeout: [exit, wait: 1h]\n  - wait: 1h\n",
    "weights that do not total 100": "steps:\n" + SPLIT.format(40),
    "two splits": "steps:\n" + SPLIT.format(50) + SPLIT.format(30),
    "a winner without a goal": "steps:\n" + SPLIT.format(50) + "    winner: {metric: conversion, "
    "at: 'p<0.05'}\n",
    "a winner by revenue without a value": "goal: {event: Y}\nsteps:\n"
    + SPLIT.format(50)
    + "    winner: {metric: revenue, at: 0.01}\n",
    "a goal that exit_when ends first": "goal: {event: Y}\nexit_when: {event: Y}\nsteps: [exit]\n",
    "two tests of one name and events out of order": "steps: [exit]\ntests:\n"
    "  - name: t\n    events: [{at: 0s, event: A}, {at: 2h, event: B}, {at: 1h, event: C}]\n"
    "    expect: []\n  - name: t\n    events: [{at: 0s, event: A}]\n    expect: []\n",
    "a misspelt message": MESSAGE + "steps:\n  - send: {channel: sms, message: welcom}\n",
    "an unknown message": MESSAGE + "steps:\n  - send: {channel: sms, message: promo}\n",
    "a message without the channel's variant": MESSAGE
    + "steps:\n  - send: {channel: email, message: welcome}\n",
    "a preferred send of an unknown message": MESSAGE
    + "steps:\n  - send: {channel: preferred, message: welcom}\n",
    "a budget falling back to a channel no message has": MESSAGE
    + "budget: {on_budget: {fallback: email}}\n"
    + "steps:\n  - send: {channel: sms, message: welcome}\n",
}


REPORTED = {
    "a step after exit": [(7, 5, "step 1 can never run: it comes after exit (step 0)")],
    "a step after a branch whose arms all exit": [
        (10, 5, "step 1 can never run: every arm of the branch at step 0 ends in exit")
    ],
    "a step after exit in on_timeout": [
        (7, 24, "step 0.0.1 can never run: it comes after exit (step 0.0.0)")
    ],
    "weights that do not total 100": [(6, 5, "the split's weights add up to 90, not 100")],
    "two splits": [
        (11, 5, "the split's weights add up to 80, not 100"),
        (11, 5, "a journey has at most one split (step 0 is one)"),
    ],
    "a winner without a goal": [
        (11, 22, "winner by conversion needs a goal: without one nobody converts")
    ],
    "a winner by revenue without a value": [
        (12, 22, "winner by revenue needs the goal to have a value")
    ],
    "a goal that exit_when ends first": [
        (
            5,
            1,
            "the goal cannot be reached during a trip: 'Y' is also the exit_when event, and "
            "exit_when is checked first",
        )
    ],
    "two tests of one name and events out of order": [
        (8, 59, "events must be listed in time order: 1h comes before the previous event's 2h"),
        (10, 11, "test name 't' is already used on line 7"),
    ],
    "a misspelt message": [(9, 35, "unknown message 'welcom'")],
    "an unknown message": [(9, 35, "unknown message 'promo'")],
    "a message without the channel's variant": [(9, 37, "message 'welcome' has no email variant")],
    "a preferred send of an unknown message": [(9, 41, "unknown message 'welcom'")],
    "a budget falling back to a channel no message has": [
        (
            8,
            21,
            "on_budget falls back to email, but no message a send step sends has a variant "
            "for email",
        )
    ],
}


@pytest.mark.parametrize("name", list(ACROSS))
def test_the_checks_across_parts_report_each_mistake_where_it_is_written(name: str) -> None:
    found = [(i.line, i.column, i.message) for i in issues(TOP + ACROSS[name])]
    assert found == REPORTED[name]


def test_a_journey_without_mistakes_across_its_parts_loads() -> None:
    text = TOP + "goal: {event: Y, value: event.properties.total, currency: EUR}\nsteps:\n"
    text += SPLIT.format(50) + "    winner: {metric: revenue, at: 0.01}\n  - exit\n"
    assert parse_journey(text, "j.yaml").steps


@pytest.mark.parametrize(
    ("segments", "who"),
    [
        ({"vip": ("email",), "all": ("sms",)}, "segment vip"),
        ({"vip": (), "all": ("email", "whatsapp")}, "any segment"),
        ({}, "any segment"),
    ],
    ids=["the trigger segment's channels", "any segment's channels", "no channels listed"],
)
def test_a_preferred_send_no_segment_can_reach_is_reported(
    segments: dict[str, tuple[str, ...]], who: str
) -> None:
    text = (
        "id: demo\nname: Demo\ntrigger: {segment: vip}\n"
        + MESSAGE
        + "steps:\n  - send: {channel: preferred, message: welcome}\n"
    )
    [issue] = issues(text, segments)
    assert (issue.line, issue.column, issue.message) == (
        8,
        41,
        f"channel preferred: message 'welcome' has no variant for a channel {who} lists",
    )
    assert parse_journey(text, "j.yaml").steps  # without the segments: not checked


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (
            "goal: {event: Y, value: event.properties.total, currency: USD}\n",
            (
                6,
                59,
                "goal revenue is in USD but costs are counted in EUR (CARILLON_COST_CURRENCY): "
                "ROI needs one currency",
            ),
        ),
        (
            "budget: {amount: 20USD, per: day}\n",
            (
                6,
                18,
                "budget.amount is in USD but costs are counted in EUR (CARILLON_COST_CURRENCY)",
            ),
        ),
    ],
    ids=["the goal's revenue", "the budget"],
)
def test_an_amount_in_another_currency_than_the_costs_is_reported(
    part: str, expected: tuple[int, int, str]
) -> None:
    [issue] = issues(TOP + "steps: [exit]\n" + part)  # costs are counted in EUR by default
    assert (issue.line, issue.column, issue.message) == expected
