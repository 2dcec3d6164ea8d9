"""Fires due waits: claims due timers in batches and resumes their trips.

`FOR UPDATE SKIP LOCKED` on the timer and its trip lets several schedulers run at once without
firing a timer twice, and never blocks on a trip an event is exiting at that moment.

A batch is fired in one go: its people and trigger events are read with one query each, and
the timers' and trips' changes are written together, so a timer costs about the outbox row its
trip writes. When anything in the batch raises, the batch is rolled back to its claim and its
timers are fired again one savepoint each: a broken trip is marked `error` and the others fire.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from app import clock
from app.db import is_postgres, session_scope
from app.events.models import Event
from app.journeys import runtime
from app.journeys.models import ACTIVE, JourneyInstance, Timer
from app.profiles.models import Profile
from app.profiles.view import views

log = logging.getLogger(__name__)

Claimed = Sequence[Row[Timer, JourneyInstance]]


def _claim(session: Session, batch_size: int) -> Claimed:
    """The earliest due timers with their trips: an index range scan of the pending ones,
    whatever the number of timers waiting further ahead."""
    stmt = (
        select(Timer, JourneyInstance)
        .join(JourneyInstance, Timer.instance_id == JourneyInstance.id)
        .where(Timer.status == "pending", Timer.due_at <= clock.now())
        .order_by(Timer.due_at)
        .limit(batch_size)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(
            skip_locked=True, of=[Timer.__table__, JourneyInstance.__table__]
        )
    return session.execute(stmt).all()


def _triggers(session: Session, instances: Sequence[JourneyInstance]) -> list[Event]:
    """The trips' trigger events in one query. The caller holds the list while it resumes
    them: the session's identity map keeps only what is referenced, and resuming a trip reads
    its trigger through it."""
    ids = {instance.trigger_event_id for instance in instances}
    return list(session.scalars(select(Event).where(Event.id.in_(ids))))


def _people(session: Session, instances: Sequence[JourneyInstance]) -> dict[str, dict[str, Any]]:
    ids = {instance.profile_id for instance in instances}
    return views(session, list(session.scalars(select(Profile).where(Profile.id.in_(ids)))))


def _due(timer: Timer, instance: JourneyInstance) -> bool:
    """Mark the timer fired, or cancelled when its trip moved on meanwhile; True if fired."""
    if instance.status != ACTIVE or instance.cursor != timer.step_path:
        timer.status = "cancelled"
        return False
    timer.status = "fired"
    timer.fired_at = clock.now()
    return True


def _fire(session: Session, rows: Claimed) -> None:
    due = [(timer, instance) for timer, instance in rows if _due(timer, instance)]
    if not due:  # the scheduler's usual poll: nothing to read
        return
    instances = [instance for _, instance in due]
    triggers = _triggers(session, instances)
    people = _people(session, instances)
    for timer, instance in due:
        runtime.resume(session, instance, timer.step_path, people[instance.profile_id])
        instance.updated_at = clock.now()
    del triggers  # held until every trip has resumed


def _fire_each(session: Session, rows: Claimed) -> None:
    for row in rows:
        timer, instance = row
        try:
            with session.begin_nested():
                _fire(session, [row])
        except Exception as exc:  # one broken trip must not hold up the batch
            log.exception("timer %s of instance %s failed", timer.id, instance.id)
            timer.status = "error"
            timer.error = repr(exc)


def fire_due(batch_size: int) -> int:
    """Fire every timer due now, `batch_size` per transaction; returns how many were claimed."""
    fired = 0
    while True:
        with session_scope() as session:
            rows = _claim(session, batch_size)
            try:
                with session.begin_nested():
                    _fire(session, rows)
            except Exception:
                log.warning("a batch of %d timers failed; firing them one by one", len(rows))
                _fire_each(session, rows)
        fired += len(rows)
        if len(rows) < batch_size:
            return fired
