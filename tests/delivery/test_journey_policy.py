"""The journey keys of the send-time policy (`kind`, `priority`, `on_cap`, `caps`): parsed,
refused with `file:line:column` and a hint, and the JSON Schema agrees with validation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from app.journeys.definition import Cap
from app.journeys.language.files import JourneyInvalid, parse_journey
from app.journeys.schema import journey_schema

HEAD = "id: demo\nname: Demo\ntrigger:\n  event: Signed Up\nsteps: [exit]\n"


def issues(text: str) -> list[str]:
    with pytest.raises(JourneyInvalid) as raised:
        parse_journey(text, "j.yaml")
    return [str(issue) for issue in raised.value.issues]


def schema_errors(text: str) -> list[str]:
    validator = Draft202012Validator(journey_schema())
    return [e.message for e in validator.iter_errors(YAML(typ="safe", pure=True).load(text))]


def test_defaults_are_a_marketing_journey_of_priority_0_deferred_by_caps() -> None:
    journey = parse_journey(HEAD, "j.yaml")
    assert (journey.kind, journey.priority, journey.on_cap, dict(journey.caps)) == (
        "marketing",
        0,
        "defer",
        {},
    )


def test_all_keys() -> None:
    text = HEAD + 'priority: -5\non_cap: drop\ncaps:\n  email: ["1/24h", 3/7d]\n  sms: 2/1d\n'
    journey = parse_journey(text, "j.yaml")
    assert (journey.priority, journey.on_cap) == (-5, "drop")
    assert dict(journey.caps) == {
        "email": (Cap(1, timedelta(days=1), "1/24h"), Cap(3, timedelta(days=7), "3/7d")),
        "sms": (Cap(2, timedelta(days=1), "2/1d"),),
    }
    assert parse_journey(HEAD + "caps: {email: []}\n", "j.yaml").caps == {"email": ()}
    assert parse_journey(HEAD + "kind: transactional\n", "j.yaml").kind == "transactional"
    assert schema_errors(text) == []


BAD = {
    "kind: transactionnal\n": [
        "j.yaml:6:7: kind must be marketing or transactional, not 'transactionnal' "
        "(hint: did you mean 'transactional'? allowed: marketing, transactional)"
    ],
    "priority: high\n": [
        "j.yaml:6:11: priority must be a whole number, not 'high' (hint: e.g. priority: 10; "
        "the higher wins a person's last capped slot (default 0))"
    ],
    "priority: true\n": ["j.yaml:6:11: priority must be a whole number, not true (a yes/no value)"],
    "on_cap: later\n": [
        "j.yaml:6:9: on_cap must be defer or drop, not 'later' (hint: allowed: defer, drop)"
    ],
    "caps: 1/24h\n": ["j.yaml:6:7: caps must be a mapping of keys, not '1/24h'"],
    "caps: {mail: 1/24h}\n": ["j.yaml:6:8: unknown channel 'mail' (hint: did you mean 'email'?"],
    "caps: {email: 0/24h}\n": [
        "j.yaml:6:15: caps.email: frequency cap '0/24h' must allow at least 1 message"
    ],
    "caps: {email: [1/1 hour]}\n": [
        "j.yaml:6:16: caps.email[0]: '1 hour' is not a duration like 30s, 15m, 1h or 7d; "
        "did you mean '1h'?"
    ],
    "caps: {email: [3]}\n": ["j.yaml:6:16: caps.email[0] must be text, not the number 3"],
    "caps: {email: {per_day: 1}}\n": ["j.yaml:6:15: caps.email must be a list of caps"],
    "kind: transactional\non_cap: drop\ncaps: {sms: 1/24h}\n": [
        "j.yaml:7:1: on_cap has no effect: a transactional journey is never capped "
        "(hint: remove it, or make the journey kind: marketing)",  # caps: told once fixed
    ],
}


@pytest.mark.parametrize("policy", list(BAD))
def test_bad_keys_are_reported_where_they_are_written(policy: str) -> None:
    found = issues(HEAD + policy)
    assert len(found) == len(BAD[policy]), found
    for issue, expected in zip(found, BAD[policy], strict=True):
        assert issue.startswith(expected), issue


@pytest.mark.parametrize("policy", list(BAD))
def test_the_schema_rejects_them_too(policy: str) -> None:
    assert schema_errors(HEAD + policy), policy
