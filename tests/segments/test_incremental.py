"""Computed traits and memberships follow each event in its routing transaction, and a window
that passes is a due row the scheduler fires: nothing rescans everybody."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import clock
from app.db import session_scope
from app.events import routing
from app.segments import catalog
from app.segments.expiry import expire_due
from app.segments.models import ComputedTrait, Membership, TraitEvent
from tests.helpers import (
    SHIPPED,
    T0,
    cart,
    ingest,
    instances,
    journeys,
    order,
    person_at,
    profile_of,
    route,
)

SEGMENTS = Path(__file__).resolve().parents[2] / "segments"


@pytest.fixture
def shipped() -> None:
    assert catalog.sync_directory(SEGMENTS) == []


def computed(user: str = "alice") -> dict[str, object]:
    return profile_of("user_id", user)["computed"]


def test_an_event_updates_its_person_s_traits_and_memberships(
    manual_clock: clock.ManualClock, shipped: None
) -> None:
    route(person_at(), cart(30, minutes=0), cart(50, minutes=1))
    seen = profile_of("user_id", "alice")
    assert seen["computed"]["carts_30d"] == 2
    assert seen["computed"]["cart_value_max_30d"] == 50
    assert seen["computed"]["orders_total"] == 0
    assert seen["segments"] == ["frequent-abandoners"]
    assert seen["lifecycle_stage"] == "new"

    route({**order(minutes=3), "properties": {"total": 600}})
    seen = profile_of("user_id", "alice")
    assert seen["computed"]["orders_total"] == 1
    assert seen["computed"]["spend_365d"] == 600
    assert seen["computed"]["last_order_at"] == (T0 + timedelta(minutes=3)).isoformat()
    assert seen["segments"] == []  # an order takes her out of the abandoners
    assert seen["lifecycle_stage"] == "vip"


def test_a_window_passing_is_fired_by_the_scheduler_and_flips_the_membership(
    manual_clock: clock.ManualClock, shipped: None
) -> None:
    route(person_at(), cart(30, minutes=0))
    manual_clock.advance(timedelta(hours=1))
    route(cart(50, minutes=60))
    assert profile_of("user_id", "alice")["segments"] == ["frequent-abandoners"]

    manual_clock.advance(timedelta(days=30) - timedelta(hours=1, seconds=1))
    assert expire_due(100) == 0  # not due yet: one second before the first cart leaves
    assert computed()["carts_30d"] == 2

    manual_clock.advance(timedelta(seconds=1))
    assert expire_due(100) == 1
    assert computed()["carts_30d"] == 1
    assert profile_of("user_id", "alice")["segments"] == []

    manual_clock.advance(timedelta(hours=1))
    assert expire_due(100) == 1
    assert computed()["carts_30d"] == 0
    with session_scope() as session:  # the window's events are gone with it, and so is the due time
        assert session.scalar(select(func.count()).select_from(TraitEvent)) == 0
        due = session.scalar(select(func.count()).where(ComputedTrait.expires_at.is_not(None)))
        assert due == 0
    assert expire_due(100) == 0


def test_lifecycle_stages_move_with_time(manual_clock: clock.ManualClock, shipped: None) -> None:
    route(person_at(), {**order(minutes=0), "properties": {"total": 40}})
    assert profile_of("user_id", "alice")["lifecycle_stage"] == "active"
    manual_clock.advance(timedelta(days=90))
    expire_due(100)
    assert profile_of("user_id", "alice")["lifecycle_stage"] == "at-risk"
    manual_clock.advance(timedelta(days=90))
    expire_due(100)
    assert profile_of("user_id", "alice")["lifecycle_stage"] == "lapsed"
    with session_scope() as session:  # exactly one stage
        stages = session.scalar(select(func.count()).where(Membership.stage))
        assert stages == 1


def test_an_event_older_than_its_window_does_not_count(
    manual_clock: clock.ManualClock, shipped: None
) -> None:
    manual_clock.advance(timedelta(days=40))
    route(person_at(minutes=0), cart(30, minutes=0))
    assert computed()["carts_30d"] == 0


def test_entering_a_segment_starts_the_journey_it_triggers(
    manual_clock: clock.ManualClock, shipped: None, tmp_path: Path
) -> None:
    journeys(
        tmp_path,
        (SHIPPED / "abandoner_rescue.yaml").read_text(encoding="utf-8"),
    )
    route(person_at(), cart(30, minutes=0))
    assert instances() == []
    route(cart(50, minutes=1))
    [trip] = instances()
    assert trip.journey_id == "abandoner-rescue"
    route(cart(70, minutes=2))  # still in the segment: no second trip
    assert len(instances()) == 1


def test_concurrent_events_for_one_person_lose_no_update(
    manual_clock: clock.ManualClock, shipped: None
) -> None:
    """Two workers routing one person's events at once: on PostgreSQL the person's locks
    serialize them, on SQLite the one writer does; either way every cart counts."""
    route(person_at())
    manual_clock.advance(timedelta(hours=1))
    ids = ingest(*[cart(10 + i, minutes=i) for i in range(20)])
    halves = [ids[0::2], ids[1::2]]
    errors: list[BaseException] = []

    def work(part: list[int]) -> None:
        try:
            for event_id in part:
                routing.process_one(event_id)
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(part,)) for part in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert computed()["carts_30d"] == 20
    assert computed()["cart_value_max_30d"] == 29


def test_leaving_a_segment_starts_an_exit_journey_when_the_window_passes(
    manual_clock: clock.ManualClock, shipped: None, tmp_path: Path
) -> None:
    journeys(
        tmp_path,
        "id: comeback\nname: Comeback\ntrigger: {segment: frequent-abandoners, on: exit}\n"
        "steps:\n  - send: {channel: email, subject: Hi, html: '<p>Hi</p>', text: Hi}\n",
    )
    route(person_at(), cart(30, minutes=0), cart(50, minutes=0))
    assert instances() == []
    manual_clock.advance(timedelta(days=30))
    assert expire_due(100) == 1
    [trip] = instances()
    assert trip.journey_id == "comeback"


def test_a_merge_brings_the_anonymous_history_s_traits_along(
    manual_clock: clock.ManualClock, shipped: None
) -> None:
    anonymous = {"anonymousId": "device-1"}
    route({**cart(30, minutes=0), **anonymous, "userId": None})
    route(person_at(), {**order(minutes=1), "properties": {"total": 20}})
    route({"type": "identify", "userId": "alice", **anonymous, "traits": {}})
    seen = profile_of("user_id", "alice")
    assert seen["computed"]["carts_30d"] == 1
    assert seen["computed"]["orders_total"] == 1
