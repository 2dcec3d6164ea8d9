"""Re-enqueues work whose queue message was lost (a crash between commit and enqueue, a
broker restart, the in-process queue of a stopped `serve`). Safe to over-deliver: every job
re-reads its row and does nothing if the work is done.

It also closes the one ambiguous window: a delivery claimed (`sending`) whose worker died
during the provider call. Nothing says whether the provider acted, so after
`CARILLON_SENDING_TIMEOUT_SECONDS` the channel's policy decides: resend where a repeat is
harmless (adding a person to a Meta audience is idempotent at Meta), otherwise `unknown`, for a
person to review and replay (a second e-mail or SMS is worse than a missing one)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from app import clock
from app.db import is_postgres, session_scope
from app.delivery import models as delivery
from app.delivery import state
from app.delivery.jobs import send_delivery
from app.delivery.models import Delivery
from app.events.jobs import PROCESS_EVENTS
from app.events.models import Event
from app.queue import enqueue
from app.settings import get_settings
from channels import registry

log = logging.getLogger(__name__)

# Channels where a repeated provider call changes nothing, so an abandoned claim is resent.
UNKNOWN_NOTE = (
    "its worker stopped during the provider call: it may or may not have been sent; "
    "check with the provider, then replay it or leave it"
)


def sweep_events(older_than: timedelta, limit: int = 1000) -> int:
    with session_scope() as session:
        cutoff = clock.now() - older_than
        stmt = (
            select(Event.id)
            .where(
                Event.processed_at.is_(None),
                Event.failed_at.is_(None),
                Event.enqueued_at <= cutoff,
            )
            .order_by(Event.id)
            .limit(limit)
        )
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        ids = list(session.scalars(stmt))
        if ids:
            session.execute(update(Event).where(Event.id.in_(ids)).values(enqueued_at=clock.now()))
            enqueue(session, PROCESS_EVENTS, ids)
    if ids:
        log.warning("re-enqueued %d unprocessed events", len(ids))
    return len(ids)


def sweep_abandoned(timeout: timedelta, limit: int = 1000) -> tuple[int, int]:
    """Apply the channel's policy to rows claimed longer than `timeout` ago with no answer
    recorded; return (resent, marked unknown)."""
    with session_scope() as session:
        now = clock.now()
        stmt = (
            select(Delivery)
            .where(Delivery.status == delivery.SENDING, Delivery.updated_at <= now - timeout)
            .order_by(Delivery.id)
            .limit(limit)
        )
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(session.scalars(stmt))
        resent = 0
        for row in rows:
            if registry.spec(row.channel).resend_when_abandoned:
                detail = "no answer recorded after its claim; resent (a repeat is harmless)"
                state.resend(session, row, detail, now)
                resent += 1
            else:
                state.abandon(session, row, UNKNOWN_NOTE, now)
    if rows:
        log.warning(
            "%d deliveries abandoned during the provider call: %d resent, %d marked unknown",
            len(rows),
            resent,
            len(rows) - resent,
        )
    return resent, len(rows) - resent


def sweep_deliveries(older_than: timedelta, limit: int = 1000) -> int:
    """Re-enqueue pending rows whose message was lost, after settling abandoned claims."""
    sweep_abandoned(timedelta(seconds=get_settings().sending_timeout_seconds), limit)
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
            enqueue(session, send_delivery(channel), delivery_id)
    if rows:
        log.warning("re-enqueued %d pending deliveries", len(rows))
    return len(rows)
