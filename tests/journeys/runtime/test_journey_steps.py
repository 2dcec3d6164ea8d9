"""Every step kind of the journey language, run by the live runtime on the real database and
queue with a manual clock."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.events import routing
from app.journeys.timers import fire_due
from tests.helpers import (
    T0,
    Pipeline,
    deliveries,
    ingest,
    instances,
    journeys,
    person_at,
    profile_of,
    send,
    timers,
    track_at,
)


def fire(clock: Any, pipeline: Pipeline, delta: timedelta) -> int:
    clock.advance(delta)
    fired = fire_due(100)
    pipeline.drain()
    return fired


WAIT_UNTIL = """
id: morning
name: Morning message
trigger: {event: Signed Up}
steps:
  - wait: {until: "09:00"}
  - send: {channel: sms, text: "Bonjour"}
"""


@pytest.mark.parametrize(
    ("timezone", "due"),
    [
        # T0 is 09:00 UTC = 10:00 in Paris: the next 09:00 there is tomorrow 08:00 UTC.
        ("Europe/Paris", datetime(2026, 11, 3, 8, 0, tzinfo=UTC)),
        # 09:00 in New York (UTC-5 in November) is still ahead today.
        ("America/New_York", datetime(2026, 11, 2, 14, 0, tzinfo=UTC)),
        # No timezone trait: the default (UTC); 09:00 is now, so the next one is tomorrow.
        (None, datetime(2026, 11, 3, 9, 0, tzinfo=UTC)),
        # An unknown zone falls back to the default rather than failing the trip.
        ("Mars/Olympus", datetime(2026, 11, 3, 9, 0, tzinfo=UTC)),
    ],
)
def test_wait_until_is_the_next_local_time_of_the_person(
    tmp_path: Path, manual_clock, pipeline, timezone: str | None, due: datetime
) -> None:
    journeys(tmp_path, WAIT_UNTIL)
    traits = {"timezone": timezone} if timezone else {}
    send(pipeline, person_at(phone="+33612345678", **traits), track_at("Signed Up"))
    [timer] = timers()
    assert timer.due_at == due
    assert fire(manual_clock, pipeline, due - T0 - timedelta(seconds=1)) == 0
    assert fire(manual_clock, pipeline, timedelta(seconds=1)) == 1
    assert [d.content["text"] for d in deliveries()] == ["Bonjour"]


WAIT_FOR = """
id: order-nudge
name: Nudge until the order
trigger: {event: Cart Abandoned}
steps:
  - wait_for:
      event: Order Completed
      when: event.properties.total > 0
      timeout: 1d
    on_timeout:
      - send: {channel: sms, text: "Votre panier expire ce soir"}
  - send: {channel: email, subject: "Merci", html: "<p>Merci</p>", text: "Merci"}
"""


def test_wait_for_event_skips_the_timeout_steps(tmp_path: Path, manual_clock, pipeline) -> None:
    journeys(tmp_path, WAIT_FOR)
    send(pipeline, person_at(phone="+33612345678"), track_at("Cart Abandoned"))
    send(pipeline, track_at("Order Completed", minutes=2, total=0))  # `when` does not hold
    assert instances()[0].cursor == "0"
    send(pipeline, track_at("Order Completed", minutes=3, total=42))
    assert [(d.step_path, d.channel) for d in deliveries()] == [("1", "email")]
    assert [t.status for t in timers()] == ["cancelled"]
    assert instances()[0].status == "completed"
    assert fire(manual_clock, pipeline, timedelta(days=2)) == 0
    assert len(deliveries()) == 1


def test_wait_for_timeout_runs_on_timeout_then_the_rest(
    tmp_path: Path, manual_clock, pipeline
) -> None:
    journeys(tmp_path, WAIT_FOR)
    send(pipeline, person_at(phone="+33612345678"), track_at("Cart Abandoned"))
    assert fire(manual_clock, pipeline, timedelta(hours=23)) == 0
    assert fire(manual_clock, pipeline, timedelta(hours=1)) == 1
    assert [(d.step_path, d.channel) for d in deliveries()] == [("0.0.0", "sms"), ("1", "email")]
    assert instances()[0].status == "completed"


BRANCH = """
id: by-stage
name: Message by lifecycle stage
trigger: {event: Cart Abandoned}
steps:
  - branch:
      - when: profile.traits.lifecycle_stage == "prospect"
        steps:
          - send: {channel: sms, text: "Dernier rappel, {{ profile.traits.first_name }}"}
      - when: profile.traits.lifecycle_stage == "regular"
        steps:
          - exit
      - else:
          - update_profile:
              set: {cart_nudged: true, last_cart_total: "{{ event.properties.total }}"}
  - send: {channel: email, subject: "Votre panier", html: "<p>…</p>", text: "…"}
"""


@pytest.mark.parametrize(
    ("stage", "sent"),
    [
        ("prospect", [("0.0.0", "sms"), ("1", "email")]),
        ("regular", []),  # that arm exits the journey
        ("inactive", [("1", "email")]),
        (None, [("1", "email")]),  # a missing trait matches no `when`: else
    ],
)
def test_branch_takes_the_first_arm_that_holds(
    tmp_path: Path, pipeline, stage: str | None, sent: list[tuple[str, str]]
) -> None:
    journeys(tmp_path, BRANCH)
    traits = {"lifecycle_stage": stage} if stage else {}
    send(pipeline, person_at(phone="+33612345678", **traits), track_at("Cart Abandoned", total=42))
    assert [(d.step_path, d.channel) for d in deliveries()] == sent
    if stage == "prospect":
        assert deliveries()[0].content["text"] == "Dernier rappel, Alice"
    nudged = profile_of("user_id", "alice")["traits"]
    if stage in ("inactive", None):
        assert (nudged["cart_nudged"], nudged["last_cart_total"]) == (True, "42")
    else:
        assert "cart_nudged" not in nudged


def test_update_profile_loses_to_a_newer_identify(tmp_path: Path, manual_clock, pipeline) -> None:
    """Journey writes are stamped with the clock: the shop's later identify wins."""
    journeys(tmp_path, BRANCH)
    send(pipeline, person_at(), track_at("Cart Abandoned", total=10))
    assert profile_of("user_id", "alice")["traits"]["cart_nudged"] is True
    send(pipeline, person_at(minutes=5, cart_nudged=False))
    assert profile_of("user_id", "alice")["traits"]["cart_nudged"] is False


SPLIT = """
id: ab
name: A/B test
trigger: {event: Cart Abandoned}
re_entry: always
steps:
  - split:
      - weight: 45
        steps:
          - send: {channel: email, subject: "Votre panier", html: "<p>a</p>", text: "a"}
      - weight: 45
        name: discount
        steps:
          - send: {channel: email, subject: "-10 %", html: "<p>b</p>", text: "b"}
      - holdout: true
        weight: 10
  - send: {channel: sms, text: "Toujours là ?"}
"""


def test_split_arms_follow_the_weights_and_holdout_gets_nothing(tmp_path: Path, pipeline) -> None:
    journeys(tmp_path, SPLIT)
    users = [f"user{i}" for i in range(400)]
    send(pipeline, *[person_at(u, phone=f"+3361{i:07d}") for i, u in enumerate(users)])
    send(pipeline, *[track_at("Cart Abandoned", user=u) for u in users])
    arms = Counter(i.arm for i in instances())
    assert set(arms) == {"A", "discount", "holdout"}
    # 45/45/10 of 400 people; a fair hash stays well inside these bounds.
    assert 140 <= arms["A"] <= 220 and 140 <= arms["discount"] <= 220
    assert 20 <= arms["holdout"] <= 65

    by_instance: dict[int, list[Any]] = {}
    for delivery in deliveries():
        by_instance.setdefault(delivery.instance_id, []).append(delivery)
    for instance in instances():
        sent = by_instance.get(instance.id, [])
        if instance.arm == "holdout":
            assert sent == []  # the control group receives nothing, not even later steps
        else:
            assert [d.arm for d in sent] == [instance.arm, instance.arm]
            subject = "Votre panier" if instance.arm == "A" else "-10 %"
            assert [d.content.get("subject") for d in sent] == [subject, None]


def test_a_person_gets_the_same_arm_every_time(tmp_path: Path, pipeline) -> None:
    journeys(tmp_path, SPLIT)
    users = [f"user{i}" for i in range(30)]
    send(pipeline, *[person_at(u) for u in users])
    send(pipeline, *[track_at("Cart Abandoned", minutes=1, user=u) for u in users])
    first = {i.profile_id: i.arm for i in instances()}
    send(pipeline, *[track_at("Cart Abandoned", minutes=2, user=u) for u in users])
    second = [(i.profile_id, i.arm) for i in instances()][len(users) :]
    assert len(second) == len(users)
    assert all(first[profile] == arm for profile, arm in second)


GOAL = """
id: winback
name: Win-back with a goal
trigger: {event: Cart Abandoned}
goal:
  event: Order Completed
  when: event.properties.total >= 10
  within: 7d
steps:
  - wait: 1h
  - send: {channel: email, subject: "Votre panier", html: "<p>…</p>", text: "…"}
"""


def test_goal_reached_during_the_trip_converts_and_exits(
    tmp_path: Path, manual_clock, pipeline
) -> None:
    journeys(tmp_path, GOAL)
    send(pipeline, person_at(), track_at("Cart Abandoned"))
    # Events arrive when they happen: ingest takes a time far ahead of its arrival as the arrival.
    manual_clock.advance(timedelta(minutes=10))
    send(pipeline, track_at("Order Completed", minutes=10, total=5))  # below the goal's `when`
    assert instances()[0].status == "active"
    manual_clock.advance(timedelta(minutes=10))
    send(pipeline, track_at("Order Completed", minutes=20, total=50))
    [instance] = instances()
    assert (instance.status, instance.exit_reason) == ("converted", "goal: Order Completed")
    assert instance.converted_at == T0 + timedelta(minutes=20)
    assert [t.status for t in timers()] == ["cancelled"]
    assert fire(manual_clock, pipeline, timedelta(hours=2)) == 0
    assert deliveries() == []


@pytest.mark.parametrize(("days", "converted"), [(6, True), (8, False)])
def test_goal_after_the_trip_ended_counts_within_the_window(
    tmp_path: Path, manual_clock, pipeline, days: int, converted: bool
) -> None:
    journeys(tmp_path, GOAL)
    send(pipeline, person_at(), track_at("Cart Abandoned", minutes=0))
    fire(manual_clock, pipeline, timedelta(hours=1))
    assert [i.status for i in instances()] == ["completed"]
    manual_clock.advance(T0 + timedelta(days=days) - manual_clock.now())
    send(pipeline, track_at("Order Completed", minutes=days * 24 * 60, total=50))
    [instance] = instances()
    assert instance.status == "completed"
    assert (instance.converted_at is not None) is converted


QUEUED = """
id: queued
name: Sent at once, cancelled by the exit event
trigger: {event: Signed Up}
exit_when: {event: Account Deleted}
steps:
  - send: {channel: sms, text: "Bienvenue"}
"""


def test_exit_cancels_a_send_already_queued_but_not_yet_made(tmp_path: Path) -> None:
    """The queue message survives the exit; the delivery it points at does not."""
    journeys(tmp_path, QUEUED)
    for event_id in ingest(person_at(phone="+33612345678"), track_at("Signed Up")):
        routing.process_one(event_id)  # routed, the send queued, no worker running yet
    [queued] = deliveries()
    assert queued.status == "pending"
    for event_id in ingest(track_at("Account Deleted", minutes=2)):
        routing.process_one(event_id)
    worker = Pipeline()
    worker.worker.start()
    try:
        worker.drain()  # the queued job runs now and finds nothing to send
    finally:
        worker.worker.stop()
    [cancelled] = deliveries()
    assert (cancelled.status, cancelled.attempts) == ("cancelled", 0)
    assert cancelled.error == "cancelled: exit_when: Account Deleted"
