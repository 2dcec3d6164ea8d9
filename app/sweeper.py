"""Re-enqueues work whose queue message was lost (a crash between commit and enqueue, a
broker restart, the in-process queue of a stopped `serve`). Safe to over-deliver: every job
re-reads its row and does nothing if the work is done."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from app import clock
from app.db import is_postgres, session_scope
from app.delivery import models as delivery
from app.delivery.models import Delivery
from app.delivery.tasks import send_job
from app.events.models import Event
from app.events.tasks import process
from app.queue import enqueue

log = logging.getLogger(__name__)


def sweep_events(older_than: timedelta, limit: int = 1000) -> int:
    with session_scope() as session:
        cutoff = clock.now() - older_than
        stmt = (
            select(Event.id)
            .where(Event.processed_at.is_(None), Event.enqueued_at <= cutoff)
            .order_by(Event.id)
            .limit(limit)
        )
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        ids = list(session.scalars(stmt))
        if ids:
            session.execute(update(Event).where(Event.id.in_(ids)).values(enqueued_at=clock.now()))
            enqueue(session, process, ids)
    if ids:
        log.warning("re-enqueued %d unprocessed events", len(ids))
    return len(ids)


def sweep_deliveries(older_than: timedelta, limit: int = 1000) -> int:
    with session_scope() as session:
        cutoff = clock.now() - older_than
        stmt = (
            select(Delivery.id, Delivery.channel)
            .where(
                Delivery.status == delivery.PENDING,
                # lost messages, and retries whose back-off has passed (a lost delayed message)
                or_(
                    and_(Delivery.next_attempt_at.is_(None), Delivery.enqueued_at <= cutoff),
                    Delivery.next_attempt_at <= clock.now(),
                ),
            )
            .order_by(Delivery.id)
            .limit(limit)
        )
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        rows = session.execute(stmt).all()
        if rows:
            ids = [delivery_id for delivery_id, _ in rows]
            session.execute(
                update(Delivery).where(Delivery.id.in_(ids)).values(enqueued_at=clock.now())
            )
        for delivery_id, channel in rows:
            enqueue(session, send_job(channel), delivery_id)
    if rows:
        log.warning("re-enqueued %d pending deliveries", len(rows))
    return len(rows)
