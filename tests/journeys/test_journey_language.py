"""The journey language's models compile a valid file to the very definitions the loader
builds: every shipped journey, example and docs snippet, and files using every part of the
language, give the same `Journey` either way."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from app.journeys.language import journey_model
from app.journeys.language.checks import journey_issues
from app.journeys.language.compile import compile_journey
from app.journeys.loader import parse_journey
from app.yamlfiles import FileInvalid, Issue, parse_yaml, validate_yaml
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


def both(text: str, file: str) -> tuple[str, str]:
    document = validate_yaml(text, file, journey_model(), "the journey")
    return repr(compile_journey(document, text, file)), repr(parse_journey(text, file))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_shipped_journey_compiles_as_the_loader_builds_it(path: Path) -> None:
    compiled, loaded = both(path.read_text(encoding="utf-8"), str(path))
    assert compiled == loaded


@pytest.mark.parametrize("name", list(PARTS))
def test_every_part_of_the_language_compiles_as_the_loader_builds_it(name: str) -> None:
    compiled, loaded = both(TOP + PARTS[name], "j.yaml")
    assert compiled == loaded


def test_messages_compile_as_the_loader_builds_them() -> None:
    compiled, loaded = both(HEAD + WELCOME, "j.yaml")
    assert compiled == loaded
    assert "Versions(" in compiled and "'fr-CA': Variant(" in compiled


def test_a_budget_falling_back_to_a_variant_compiles_as_the_loader_builds_it() -> None:
    budget = "budget:\n  amount: 20EUR\n  per: day\n  on_budget:\n    fallback: email\n"
    compiled, loaded = both(HEAD + WELCOME + budget, "j.yaml")
    assert compiled == loaded
    assert "BudgetPolicy(limit=Budget(amount=20.0, currency='EUR', period='day')" in compiled
    assert "on_budget='fallback', fallback='email'" in compiled


def test_the_docs_snippets_compile_as_the_loader_builds_them() -> None:
    text = (REPO / "docs" / "journeys.md").read_text(encoding="utf-8")
    snippets = [s.split("```", 1)[0] for s in text.split("```yaml\n")[1:]]
    journeys = [
        TOP + s if s.startswith("steps:") else s
        for s in snippets
        if s.startswith(("id:", "steps:"))
    ]
    assert len(journeys) >= 8
    for snippet in journeys:
        compiled, loaded = both(textwrap.dedent(snippet), "docs.yaml")
        assert compiled == loaded


# Mistakes inside a condition's or a template's text, and literal content over a channel's
# limit: the checks a schema cannot express, made by the models' validators.
INSIDE = {
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


def reasons(issues: list[Issue]) -> set[tuple[int, int, str, str | None]]:
    """Each issue's place, what is wrong (its message after the name of the value) and hint."""
    return {(i.line, i.column, i.message.split(": ", 1)[-1], i.hint) for i in issues}


@pytest.mark.parametrize("name", list(INSIDE))
def test_the_models_place_a_mistake_inside_a_text_where_the_loader_does(name: str) -> None:
    text = TOP + INSIDE[name]
    with pytest.raises(FileInvalid) as by_model:
        validate_yaml(text, "j.yaml", journey_model(), "the journey")
    with pytest.raises(FileInvalid) as by_loader:
        parse_journey(text, "j.yaml")
    [loader_issue] = by_loader.value.issues
    assert reasons([loader_issue]) <= reasons(by_model.value.issues)


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


@pytest.mark.parametrize("name", list(ACROSS))
def test_the_checks_across_parts_report_what_the_loader_reports(name: str) -> None:
    text = TOP + ACROSS[name]
    document = validate_yaml(text, "j.yaml", journey_model(), "the journey")
    with pytest.raises(FileInvalid) as by_loader:
        parse_journey(text, "j.yaml")
    journey = compile_journey(document, text, "j.yaml")
    issues = journey_issues(journey, parse_yaml(text, "j.yaml"), "j.yaml")
    assert issues == by_loader.value.issues


def test_a_journey_without_mistakes_across_its_parts_has_no_issue() -> None:
    text = TOP + "goal: {event: Y, value: event.properties.total, currency: EUR}\nsteps:\n"
    text += SPLIT.format(50) + "    winner: {metric: revenue, at: 0.01}\n  - exit\n"
    journey = compile_journey(validate_yaml(text, "j.yaml", journey_model()), text, "j.yaml")
    assert journey_issues(journey, parse_yaml(text, "j.yaml"), "j.yaml") == []


@pytest.mark.parametrize(
    "segments",
    [{"vip": ("email",), "all": ("sms",)}, {"vip": (), "all": ("email", "whatsapp")}, {}],
    ids=["the trigger segment's channels", "any segment's channels", "no channels listed"],
)
def test_a_preferred_send_no_segment_can_reach_is_reported_as_the_loader_does(
    segments: dict[str, tuple[str, ...]],
) -> None:
    text = (
        "id: demo\nname: Demo\ntrigger: {segment: vip}\n"
        + MESSAGE
        + "steps:\n  - send: {channel: preferred, message: welcome}\n"
    )
    journey = compile_journey(validate_yaml(text, "j.yaml", journey_model()), text, "j.yaml")
    with pytest.raises(FileInvalid) as by_loader:
        parse_journey(text, "j.yaml", segments)
    issues = journey_issues(journey, parse_yaml(text, "j.yaml"), "j.yaml", segments)
    assert issues == by_loader.value.issues
    assert journey_issues(journey, parse_yaml(text, "j.yaml"), "j.yaml") == []  # not checked


@pytest.mark.parametrize(
    "part",
    [
        "goal: {event: Y, value: event.properties.total, currency: USD}\n",
        "budget: {amount: 20USD, per: day}\n",
    ],
    ids=["the goal's revenue", "the budget"],
)
def test_an_amount_in_another_currency_than_the_costs_is_reported_as_the_loader_does(
    part: str,
) -> None:
    text = TOP + "steps: [exit]\n" + part  # costs are counted in EUR by default
    journey = compile_journey(validate_yaml(text, "j.yaml", journey_model()), text, "j.yaml")
    with pytest.raises(FileInvalid) as by_loader:
        parse_journey(text, "j.yaml")
    issues = journey_issues(journey, parse_yaml(text, "j.yaml"), "j.yaml")
    assert issues == by_loader.value.issues
