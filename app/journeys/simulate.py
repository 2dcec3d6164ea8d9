"""Run a journey on a virtual clock with no side effects, through the live runtime's own code.

The simulator is the real engine pointed elsewhere (see `sandbox.isolate`, which must run
first): a throw-away SQLite database, the in-process queue, dry-run channels and a manual
clock. Events are stored and routed, timers fired and deliveries made by the same functions
production runs, so a simulation cannot drift from what the journey would really do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app import clock
from app.db import session_scope
from app.delivery import models
from app.delivery.models import Delivery
from app.delivery.retry_state import retries_due
from app.delivery.service import deliver
from app.events import routing
from app.events.schemas import SegmentEvent
from app.events.service import store
from app.journeys import catalog
from app.journeys.definition import Journey, Scenario, parse_duration
from app.journeys.models import Timer
from app.journeys.timeline import WENT_OUT, Entry, timeline
from app.journeys.timers import fire_due
from app.models import reset_all
from app.segments import catalog as segment_files
from app.settings import get_settings

# The reference start of a journey test: a Monday 09:00 UTC, so `wait: {until}` is repeatable.
TEST_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
# Timers further than this after the last event are not waited for.
HORIZON = timedelta(days=400)
PERSON = "simulated-person"


@dataclass(frozen=True)
class TimedEvent:
    at: datetime
    payload: Mapping[str, Any]  # Segment-shaped; userId and timestamp are set by the simulator


def identify_payload(profile: Mapping[str, Any]) -> dict[str, Any]:
    """`{traits, email, phone}` as the identify call that creates that person."""
    traits = dict(profile.get("traits") or {})
    for key in ("email", "phone"):
        if profile.get(key):
            traits[key] = profile[key]
    return {"type": "identify", "traits": traits}


def run(
    journey: Journey,
    events: Iterable[TimedEvent],
    profile: Mapping[str, Any] | None,
    start: datetime,
) -> list[Entry]:
    """Simulate one person on one journey from `start`; returns the journey's timeline."""
    reset_all()
    catalog.forget_parsed()
    segment_files.forget_parsed()
    with session_scope() as session:
        catalog.sync(session, [journey])
    # The segments directory too: segments, lifecycle stages and `channel: preferred` as live.
    segment_files.sync_directory(get_settings().segments_dir)
    virtual = clock.ManualClock(start)
    previous = clock.set_clock(virtual)
    try:
        if profile is not None:
            _ingest(TimedEvent(start, identify_payload(profile)))
        ordered = sorted(events, key=lambda e: e.at)
        for event in ordered:
            _run_until(virtual, event.at)
            _ingest(event)
        last = ordered[-1].at if ordered else start
        _run_until(virtual, last + HORIZON)
        with session_scope() as session:
            return timeline(session, journey.id)
    finally:
        clock.set_clock(previous)


def _ingest(event: TimedEvent) -> None:
    payload = {**event.payload, "userId": PERSON, "timestamp": event.at.isoformat()}
    with session_scope() as session:
        ids = store(session, [SegmentEvent.model_validate(payload)], "simulation")
    for event_id in ids:
        routing.process_one(event_id)
    _deliver_pending()


def _run_until(virtual: clock.ManualClock, until: datetime) -> None:
    """Fire every timer and make every deferred delivery (quiet hours, caps) due up to `until`,
    each at its own due time, then move to `until`."""
    while True:
        with session_scope() as session:
            timer = session.scalar(select(func.min(Timer.due_at)).where(Timer.status == "pending"))
            deferred = session.scalar(
                select(func.min(Delivery.next_attempt_at)).where(Delivery.status == models.PENDING)
            )
        due = min((at for at in (timer, deferred) if at is not None), default=None)
        if due is None or due > until:
            break
        virtual.advance(max(due - virtual.now(), timedelta(0)))
        fire_due(get_settings().timer_batch_size)
        _deliver_pending()
    virtual.advance(max(until - virtual.now(), timedelta(0)))


def _deliver_pending() -> None:
    with session_scope() as session:
        ids = list(
            session.scalars(
                select(Delivery.id)
                .where(Delivery.status == models.PENDING, retries_due())
                .order_by(Delivery.id)
            )
        )
    for delivery_id in ids:
        deliver(delivery_id)


def offset(text: str) -> timedelta:
    """A time after the start: a duration, or `0s` for the start itself."""
    return timedelta(0) if text.strip() in ("0", "0s", "0m", "0h", "0d") else parse_duration(text)


def read_events(lines: Iterable[str], start: datetime, name: str) -> list[TimedEvent]:
    """JSON Lines of Segment events, each timed by `timestamp` (ISO 8601) or `at` (a duration
    after `start`); `type` defaults to track. Errors name the file and line."""
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{where}: not JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: each line must be a JSON object")
        payload = {"type": "track", **raw}
        at_text, stamp = payload.pop("at", None), payload.pop("timestamp", None)
        try:
            if stamp is not None:
                at = datetime.fromisoformat(str(stamp))
                at = at if at.tzinfo else at.replace(tzinfo=UTC)
            else:
                at = start + offset(str(at_text or "0s"))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if payload["type"] == "track" and not isinstance(payload.get("event"), str):
            raise ValueError(f"{where}: a track event needs an `event` name")
        events.append(TimedEvent(at, payload))
    return events


def format_offset(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def check(journey: Journey, scenario: Scenario) -> list[str]:
    """Run one of a journey's `tests:`; returns what did not go as expected (empty: passed)."""
    events = [TimedEvent(TEST_START + e.at, e.event) for e in scenario.events]
    story = run(journey, events, scenario.profile or None, TEST_START)
    # A suppressed message (no consent) or a failed one did not reach the person.
    sends = [entry for entry in story if entry.kind == "send" and entry.status in WENT_OUT]
    problems = []
    for expected in scenario.expect:
        found = next(
            (s for s in sends if _matches(s, expected.channel, expected.at, expected.contains)),
            None,
        )
        if found is not None:
            sends.remove(found)
            continue
        when = f" at {format_offset(expected.at)}" if expected.at is not None else ""
        wanted = ", ".join(f"{k} containing {v!r}" for k, v in expected.contains.items())
        with_text = f" with {wanted}" if wanted else ""
        problems.append(f"expected {expected.channel}{when}{with_text}; got {_describe(sends)}")
    problems += [f"unexpected {_describe([s])}" for s in sends]
    return problems


def _matches(send: Entry, channel: str, at: timedelta | None, contains: Mapping[str, str]) -> bool:
    content = send.content or {}
    return (
        send.channel == channel
        and (at is None or send.at == TEST_START + at)
        and all(text in str(content.get(field, "")) for field, text in contains.items())
    )


def _describe(sends: list[Entry]) -> str:
    if not sends:
        return "nothing sent"
    return "; ".join(
        f"{s.channel} at {format_offset(s.at - TEST_START)}: {s.content}" for s in sends
    )
