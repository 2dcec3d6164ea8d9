"""Spend against budget, as ops read it: `/ops/budgets`, the dashboard's panel and `/metrics`
say what the send-time check counts, per channel budget and per journey budget."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.clock import ManualClock
from app.delivery import models
from app.main import create_app
from tests.helpers import TOKEN, bearer, configure, deliver, deliveries, load, person, route
from tests.helpers import track_now as track
from tests.providers.twilio import TwilioServer


def _sms_journey(journey_id: str, event: str, policy: str = "") -> str:
    return (
        f"id: {journey_id}\nname: {journey_id}\ntrigger:\n  event: {event}\nre_entry: always\n"
        f"{policy}steps:\n  - send: {{channel: sms, text: Bonjour}}\n"
    )


@pytest.fixture
def spent(
    settings_env: pytest.MonkeyPatch,
    twilio: TwilioServer,
    manual_clock: ManualClock,
    tmp_path: Path,
) -> TestClient:
    """Three SMS at 0.07 EUR against 0.21 on SMS and 0.14 on the journey: two go out."""
    configure(
        settings_env,
        cost_per_message="sms=0.07",
        budgets="sms=0.21EUR/day",
        admin_token=TOKEN,
    )
    policy = "budget: {amount: 0.14EUR, per: day, on_budget: skip}\n"
    load(tmp_path, _sms_journey("welcome", "Go", policy), _sms_journey("plain", "X"))
    route(*(person(f"p{i}", sms_consent="opted_in") for i in range(3)))
    route(*(track(f"p{i}", "Go") for i in range(3)))
    statuses = [deliver(d.id).status for d in deliveries()]
    assert statuses == [models.SENT, models.SENT, models.SUPPRESSED]
    return TestClient(create_app())


def test_ops_read_spend_against_each_budget(spent: TestClient, manual_clock: ManualClock) -> None:
    answer = spent.get("/ops/budgets", headers=bearer())
    assert answer.status_code == 200
    resets = manual_clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    by_name = {(b["scope"], b["name"]): b for b in answer.json()}
    assert set(by_name) == {("channel", "sms"), ("journey", "welcome")}  # `plain` has none
    sms, welcome = by_name[("channel", "sms")], by_name[("journey", "welcome")]
    assert (sms["budget"], sms["left"], sms["on_budget"]) == ("0.21EUR/day", 0.07, "wait")
    assert sms["spent"] == pytest.approx(0.14)
    assert (welcome["budget"], welcome["left"], welcome["on_budget"]) == ("0.14EUR/day", 0, "skip")
    assert welcome["period_start"] == resets.isoformat()
    assert welcome["resets_at"] == (resets + timedelta(days=1)).isoformat()
    assert spent.get("/ops/summary", headers=bearer()).json()["budgets"] == answer.json()


def test_ops_read_what_a_channel_budget_does_per_channel(
    spent: TestClient, settings_env: pytest.MonkeyPatch
) -> None:
    """CARILLON_ON_BUDGET=sms=skip,email=wait: the SMS budget says skip."""
    configure(settings_env, on_budget="email=wait,sms=skip")
    by_name = {
        (b["scope"], b["name"]): b for b in spent.get("/ops/budgets", headers=bearer()).json()
    }
    assert by_name[("channel", "sms")]["on_budget"] == "skip"


def test_the_dashboard_shows_a_spent_budget_as_such(spent: TestClient) -> None:
    page = spent.get("/ops/panels", headers=bearer())
    assert page.status_code == 200
    row = page.text.split('data-budget="journey:welcome"')[1].split("</tr>")[0]
    assert "0.1400 EUR" in row and '<span class="bad">100.0%</span>' in row and "skip" in row


def test_metrics_carry_each_budget_and_its_spend(spent: TestClient) -> None:
    answer = spent.get("/metrics", headers=bearer())
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    journey = (("currency", "EUR"), ("name", "welcome"), ("period", "day"), ("scope", "journey"))
    assert samples[("carillon_budget_amount", journey)] == 0.14
    assert samples[("carillon_budget_spent", journey)] == pytest.approx(0.14)
    channel = (("currency", "EUR"), ("name", "sms"), ("period", "day"), ("scope", "channel"))
    assert samples[("carillon_budget_amount", channel)] == 0.21
