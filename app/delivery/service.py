"""Making one delivery: claim the row, call the channel, record what the provider said.

The claim (`pending` → `sending`) is one conditional UPDATE, so a redelivered queue message or
a second worker finds nothing to do: one provider call per delivery. The transaction is not
held open across the provider call.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from sqlalchemy import update

from app import clock
from app.db import session_scope
from app.delivery import models
from app.delivery.models import Delivery
from app.ops.instruments import timed_send
from app.profiles import service as profiles
from app.profiles.models import Profile
from app.settings import get_settings
from channels.base import Channel, Message, Outcome, Recipient, SendResult
from channels.dry_run import dry_run_note
from channels.registry import build_channels

log = logging.getLogger(__name__)

_STATUS = {
    Outcome.SENT: models.SENT,
    Outcome.DRY_RUN: models.DRY_RUN,
    Outcome.FAILED: models.FAILED,
}


@lru_cache
def channels() -> dict[str, Channel]:
    return build_channels(get_settings())


def _claim(delivery_id: int) -> Message | None:
    with session_scope() as session:
        claimed = session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == models.PENDING)
            .values(status=models.SENDING, attempts=Delivery.attempts + 1, updated_at=clock.now())
        ).rowcount  # type: ignore[attr-defined]
        if not claimed:
            return None
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None
        profile = session.get(Profile, delivery.profile_id)
        assert profile is not None
        # The address as of now, not as of planning: people change e-mail and phone.
        person = profiles.view(session, profile)
        return Message(
            delivery_id=str(delivery.id),
            channel=delivery.channel,
            recipient=Recipient(
                profile_id=profile.id, email=person["email"], phone=person["phone"]
            ),
            content=delivery.content,
            journey_id=delivery.journey_id,
        )


def _note(result: SendResult) -> str | None:
    """What the row's `error` column says: the provider's own words, or for a dry run that
    nothing left the machine and to whom it would have gone (as `cancelled` rows say why)."""
    if result.outcome is Outcome.DRY_RUN and result.error is None:
        return dry_run_note(result.detail)
    return result.error


def deliver(delivery_id: int) -> None:
    message = _claim(delivery_id)
    if message is None:
        log.info("delivery %s: nothing to do (already handled or cancelled)", delivery_id)
        return
    result = timed_send(channels()[message.channel], message)  # latency into /metrics
    note = _note(result)
    now = clock.now()
    with session_scope() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == models.SENDING)
            .values(
                status=_STATUS[result.outcome],
                provider_message_id=result.provider_message_id,
                status_code=result.status_code,
                error=note,
                sent_at=now if result.outcome is not Outcome.FAILED else None,
                updated_at=now,
            )
        )
    log.info(
        "delivery %s via %s: %s %s",
        delivery_id,
        message.channel,
        result.outcome.value,
        note or "",
    )
