"""The database side of retries: when a pending row is due, and what a transient provider
error does to a claimed row (the moves themselves are `app.delivery.state`'s)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from app import clock
from app.delivery import state
from app.delivery.models import SENDING, Delivery
from app.delivery.retries import plan
from app.settings import get_settings
from channels.base import SendResult

log = logging.getLogger(__name__)


def retries_due(now: datetime | None = None) -> ColumnElement[bool]:
    """A pending row may be sent: it never failed, or its back-off has passed."""
    at = now or clock.now()
    return or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= at)


def record_retry(
    session: Session,
    delivery_id: int,
    channel: str,
    result: SendResult,
    note: str | None,
    now: datetime,
) -> None:
    """Record a transient failure: back to `pending` with a back-off, or `dead` when spent."""
    delivery = session.scalars(
        select(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == SENDING)
        .with_for_update()
    ).one_or_none()
    if delivery is None:
        return
    retry = plan(get_settings(), channel, delivery.attempts, result.retry_after_seconds, now)
    delivery.status_code = result.status_code
    delivery.provider_message_id = result.provider_message_id
    if retry is None:
        state.give_up(session, delivery, note, now)
        log.warning(
            "delivery %s via %s: dead after %d attempts: %s",
            delivery_id,
            channel,
            delivery.attempts,
            note,
        )
    else:
        state.retry(session, delivery, retry.at, note, now)
        log.info(
            "delivery %s via %s: transient failure (attempt %d), retry in %.1fs: %s",
            delivery_id,
            channel,
            delivery.attempts,
            retry.delay_seconds,
            note,
        )
