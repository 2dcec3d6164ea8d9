"""A goal's value is the conversion's revenue, credited last-touch to the trip's most recent
message sent within its channel's window (e-mail 5 days, SMS 1 day unless
CARILLON_ATTRIBUTION_WINDOWS says otherwise). Messages go out through the providers' local
stand-ins; time is a manual clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.clock import ManualClock
from app.db import session_scope
from app.delivery.models import Delivery
from app.journeys import catalog
from app.journeys.models import JourneyInstance
from app.journeys.timers import fire_due
from app.ops import kpis
from app.settings import Settings
from tests.helpers import Pipeline, Providers, configure, identify, send, track

JOURNEY = """\
id: winback
name: Win-back with revenue
trigger:
  event: Cart Abandoned
goal:
  event: Order Completed
  within: 7d
  value: event.properties.total
  currency: EUR
steps:
  - send: {channel: email, subject: Votre panier, html: "<p>Votre panier</p>", text: Panier}
  - wait: 2d
  - send: {channel: sms, text: Dernier rappel}
  - wait: 3d
"""


@pytest.fixture
def winback(tmp_path: Path, providers: Providers, manual_clock: ManualClock) -> ManualClock:
    (tmp_path / "winback.yaml").write_text(JOURNEY)
    catalog.sync_directory(tmp_path)
    return manual_clock


def start(pipeline: Pipeline, clock: ManualClock) -> None:
    traits = {"email": "ada@example.com", "phone": "+33611111111", "sms_opt_in": True}
    now = clock.now().isoformat()
    send(pipeline, identify("ada", traits, now), track("ada", "Cart Abandoned", {}, now))


def after(pipeline: Pipeline, clock: ManualClock, delay: timedelta) -> None:
    clock.advance(delay)
    fire_due(100)
    pipeline.drain()


def buy(pipeline: Pipeline, clock: ManualClock, total: object) -> JourneyInstance:
    send(pipeline, track("ada", "Order Completed", {"total": total}, clock.now().isoformat()))
    with session_scope() as session:
        [trip] = session.scalars(select(JourneyInstance)).all()
        session.expunge(trip)
        return trip


def revenue_seen() -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, Any]]:
    """The dashboard's figures: the journey's revenue, and what each step and channel got."""
    with session_scope() as session:
        [journey] = kpis.journeys(session)
        by_channel = {c.channel: c.revenue for c in kpis.channels(session) if c.revenue}
    return journey.revenue, {s.path: s.revenue for s in journey.steps if s.revenue}, by_channel


def channel_of(delivery_id: int | None) -> str | None:
    with session_scope() as session:
        delivery = session.get(Delivery, delivery_id) if delivery_id else None
        return delivery.channel if delivery else None


def test_the_last_message_sent_gets_the_revenue(pipeline: Pipeline, winback: ManualClock) -> None:
    start(pipeline, winback)
    after(pipeline, winback, timedelta(days=2))  # the SMS goes out
    winback.advance(timedelta(hours=6))
    trip = buy(pipeline, winback, 42.5)
    assert trip.converted_at is not None
    assert (trip.revenue, trip.currency) == (42.5, "EUR")
    assert channel_of(trip.attributed_delivery_id) == "sms"
    assert revenue_seen() == ({"EUR": 42.5}, {"2": {"EUR": 42.5}}, {"sms": {"EUR": 42.5}})


def test_a_message_past_its_window_gives_way_to_an_older_one_still_in_its_own(
    pipeline: Pipeline, winback: ManualClock
) -> None:
    start(pipeline, winback)
    after(pipeline, winback, timedelta(days=2))
    winback.advance(timedelta(days=1, hours=12))  # SMS 1.5 days ago (1 day), e-mail 3.5 (5 days)
    trip = buy(pipeline, winback, 80)
    assert trip.revenue == 80 and channel_of(trip.attributed_delivery_id) == "email"


def test_the_windows_are_a_setting(
    pipeline: Pipeline, winback: ManualClock, settings_env: pytest.MonkeyPatch
) -> None:
    configure(settings_env, attribution_windows="email=12h")
    start(pipeline, winback)
    winback.advance(timedelta(days=1))
    trip = buy(pipeline, winback, 80)
    # The conversion and its revenue count; no message is credited with it.
    assert trip.converted_at is not None and trip.revenue == 80
    assert trip.attributed_delivery_id is None
    assert revenue_seen() == ({"EUR": 80}, {}, {})


def test_a_value_that_is_not_a_number_leaves_the_conversion_without_revenue(
    pipeline: Pipeline, winback: ManualClock
) -> None:
    start(pipeline, winback)
    trip = buy(pipeline, winback, "forty")
    assert trip.converted_at is not None
    assert (trip.revenue, trip.currency, trip.attributed_delivery_id) == (None, None, None)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("email=5", "CARILLON_ATTRIBUTION_WINDOWS: 'email=5' should be channel=value"),
        ("emial=5d", "CARILLON_ATTRIBUTION_WINDOWS: unknown channel 'emial'"),
        ("sms=0d", "should be channel=value"),
    ],
)
def test_a_bad_window_is_refused_at_start(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Settings(attribution_windows=value)
