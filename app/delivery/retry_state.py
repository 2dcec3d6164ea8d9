"""The database side of retries and deferrals: when a pending row is due, and putting a claimed
row back to `pending` for later."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from app import clock
from app.db import session_scope
from app.delivery import history, models
from app.delivery.models import Delivery
from app.delivery.retries import plan
from app.queue import enqueue
from app.settings import get_settings
from channels.base import SendResult

log = logging.getLogger(__name__)


def retries_due(now: datetime | None = None) -> ColumnElement[bool]:
    """A pending row may be sent: it never failed, or its back-off has passed."""
    at = now or clock.now()
    return or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= at)


def due_later(session: Session, delivery: Delivery, until: datetime, now: datetime) -> None:
    """Back to `pending`, not due before `until`; the send job comes back with that delay after
    commit, and the sweeper hands the row over then should that delayed message be lost."""
    from app.delivery.tasks import send_job  # tasks imports the service, which imports us

    delivery.status = models.PENDING
    delivery.next_attempt_at = until
    delivery.enqueued_at = now
    delivery.updated_at = now
    enqueue(
        session,
        send_job(delivery.channel),
        delivery.id,
        delay_seconds=(until - now).total_seconds(),
    )


def retry_later(
    delivery_id: int, channel: str, result: SendResult, note: str | None, now: datetime
) -> None:
    """Record a transient failure: back to `pending` with a back-off, or `dead` when spent."""
    with session_scope() as session:
        delivery = session.scalars(
            select(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == models.SENDING)
            .with_for_update()
        ).one_or_none()
        if delivery is None:
            return
        retry = plan(get_settings(), channel, delivery.attempts, result.retry_after_seconds, now)
        delivery.status_code = result.status_code
        delivery.error = note
        delivery.provider_message_id = result.provider_message_id
        if retry is None:
            delivery.status = models.DEAD
            delivery.next_attempt_at = None
            delivery.updated_at = now
        else:
            due_later(session, delivery, retry.at, now)
        detail = f"attempt {delivery.attempts}: {note or ''}".rstrip(": ")
        history.record(
            session, delivery_id, "dead" if retry is None else "retry", detail, "retries"
        )
    if retry is None:
        log.warning(
            "delivery %s via %s: dead after %d attempts: %s",
            delivery_id,
            channel,
            delivery.attempts,
            note,
        )
    else:
        log.info(
            "delivery %s via %s: transient failure (attempt %d), retry in %.1fs: %s",
            delivery_id,
            channel,
            delivery.attempts,
            retry.delay_seconds,
            note,
        )
