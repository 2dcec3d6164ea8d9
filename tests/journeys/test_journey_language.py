"""The journey language's models compile a valid file to the very definitions the loader
builds: every shipped journey, example and docs snippet, and files using every part of the
language, give the same `Journey` either way."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from app.journeys.language import journey_model
from app.journeys.language.compile import compile_journey
from app.journeys.loader import parse_journey
from app.yamlfiles import validate_yaml
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
