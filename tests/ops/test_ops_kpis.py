"""Dashboard figures: people per journey step, and per channel results, cost and conversions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select, update

from app.clock import ManualClock
from app.db import session_scope
from app.events import routing
from app.journeys import catalog
from app.journeys.models import JourneyInstance
from app.journeys.timers import fire_due
from app.settings import Settings, get_settings
from tests.helpers import REPO, Pipeline, bearer, ingest, newsletter_signup
from tests.providers.twilio import TwilioServer


def route(*events: dict[str, Any]) -> None:
    for event_id in ingest(*events):
        routing.process_one(event_id)


def cart(user: str) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Cart Abandoned",
        "properties": {"total": 25, "cart_url": "https://shop.example/c"},
    }


def test_people_per_journey_step(client: TestClient, admin: str, manual_clock: ManualClock) -> None:
    catalog.sync_directory(REPO / "journeys")
    route(cart("amy"), cart("bob"), cart("cat"))
    route({"type": "track", "userId": "bob", "event": "Order Completed"})  # bob exits at the wait
    manual_clock.advance(timedelta(minutes=30))
    route(cart("dan"))  # dan's wait is not due when the others' fire
    manual_clock.advance(timedelta(minutes=31))
    assert fire_due(10) == 2  # amy's and cat's reminders are rendered and planned

    answer = client.get("/ops/journeys", headers=bearer())
    assert answer.status_code == 200
    journeys = {j["journey_id"]: j for j in answer.json()}
    assert set(journeys) == {
        "abandoner-rescue",
        "cart-abandonment",
        "newsletter-welcome",
        "instagram-retarget",
    }
    wait, send = journeys["cart-abandonment"]["steps"]
    assert (wait["path"], wait["kind"]) == ("0", "wait")
    assert (wait["entered"], wait["waiting"], wait["exited"]) == (4, 1, 1)
    assert (send["path"], send["kind"]) == ("1", "send email")
    # Planned, not sent yet (no worker here): two trips reached the send and completed.
    assert (send["entered"], send["sent"], send["dry_run"], send["completed"]) == (2, 0, 0, 2)
    welcome = journeys["newsletter-welcome"]["steps"]
    assert [(s["kind"], s["entered"]) for s in welcome] == [("send sms", 0)]


def test_channel_results_cost_and_conversions(
    client: TestClient,
    admin: str,
    twilio: TwilioServer,
    pipeline: Pipeline,
    settings_env: pytest.MonkeyPatch,
) -> None:
    settings_env.setenv("CARILLON_COST_PER_MESSAGE", "sms=0.07, email=0.001")
    get_settings.cache_clear()
    catalog.sync_directory(REPO / "journeys")
    ingest(*newsletter_signup("ada", "+33611111111"), *newsletter_signup("bea", "+33622222222"))
    ingest({"type": "track", "userId": "cy", "event": "Instagram Post Liked"})
    pipeline.drain()
    # dan never opted in to SMS: his welcome SMS is suppressed, costs nothing, and is counted.
    ingest(
        {"type": "identify", "userId": "dan", "traits": {"phone": "+33644444444"}},
        {"type": "track", "userId": "dan", "event": "Newsletter Subscribed"},
    )
    pipeline.drain()
    with session_scope() as session:  # ada reached a goal (issue #3 will record these)
        first = session.scalar(
            select(func.min(JourneyInstance.id)).where(
                JourneyInstance.journey_id == "newsletter-welcome"
            )
        )
        session.execute(
            update(JourneyInstance).where(JourneyInstance.id == first).values(status="converted")
        )

    answer = client.get("/ops/channels", headers=bearer())
    assert answer.status_code == 200
    channels = {c["channel"]: c for c in answer.json()}
    sms = channels["sms"]
    assert (sms["sent"], sms["dry_run"], sms["failed"], sms["pending"]) == (2, 0, 0, 0)
    assert sms["suppressed"] == 1
    assert sms["cost_per_message"] == 0.07
    assert sms["cost"] == pytest.approx(0.14)
    assert sms["conversions"] == 1
    assert sms["cost_per_conversion"] == pytest.approx(0.14)
    # Not measurable before provider webhooks (issue #4): unknown, not zero.
    assert (sms["delivered"], sms["open_rate"], sms["click_rate"]) == (None, None, None)
    meta = channels["meta_audience"]
    assert (meta["sent"], meta["dry_run"]) == (0, 1)
    assert meta["cost_per_message"] is None and meta["cost"] is None  # no cost configured
    # Not named in the setting: the channel's own price (the Conversions API is free).
    assert (channels["meta_capi"]["cost_per_message"], channels["meta_capi"]["cost"]) == (0, 0)
    email = channels["email"]
    assert (email["sent"], email["cost"], email["cost_per_conversion"]) == (0, 0.0, None)


@pytest.mark.parametrize(
    "value", ["sms", "sms=cheap", "=0.1", "sms=-1", "sms=nan", "sms=inf", "email=0.1,,sms"]
)
def test_a_bad_cost_setting_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValidationError, match="CARILLON_COST_PER_MESSAGE"):
        Settings(cost_per_message=value)


def test_costs_parse() -> None:
    settings = Settings(cost_per_message="email=0.001,sms=0.07,meta_audience=0")
    assert settings.message_costs() == {"email": 0.001, "sms": 0.07, "meta_audience": 0.0}
    assert Settings().message_costs() == {}
    per_thousand = Settings(cost_per_message="sms=0.07", cost_per_thousand="meta_audience=6.50")
    assert per_thousand.message_costs() == {"sms": 0.07, "meta_audience": 0.0065}
