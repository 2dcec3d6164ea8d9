"""Fires due waits: claims due timers in batches and resumes their trips.

`FOR UPDATE SKIP LOCKED` on the timer and its trip lets several schedulers run at once without
firing a timer twice, and never blocks on a trip an event is exiting at that moment.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.db import is_postgres, session_scope
from app.journeys import runtime
from app.journeys.models import ACTIVE, JourneyInstance, Timer
from app.profiles.models import Profile
from app.profiles.view import view

log = logging.getLogger(__name__)


def _fire(session: Session, timer: Timer, instance: JourneyInstance) -> None:
    now = clock.now()
    if instance.status != ACTIVE or instance.cursor != timer.step_path:
        timer.status = "cancelled"
        return
    timer.status = "fired"
    timer.fired_at = now
    profile = session.get_one(Profile, instance.profile_id)
    runtime.resume(session, instance, timer.step_path, view(session, profile))
    instance.updated_at = now


def fire_due(batch_size: int) -> int:
    """Fire every timer due now, `batch_size` per transaction; returns how many were claimed."""
    fired = 0
    while True:
        with session_scope() as session:
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
            rows = session.execute(stmt).all()
            for timer, instance in rows:
                try:
                    with session.begin_nested():
                        _fire(session, timer, instance)
                except Exception as exc:  # one broken trip must not hold up the batch
                    log.exception("timer %s of instance %s failed", timer.id, instance.id)
                    timer.status = "error"
                    timer.error = repr(exc)
        fired += len(rows)
        if len(rows) < batch_size:
            return fired
