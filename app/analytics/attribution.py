"""Last-touch attribution: a conversion's revenue is credited to the trip's most recent message
that still counts, one sent within its channel's attribution window before the goal event.

Only messages really sent count (a dry run reached nobody), and only the trip's own: revenue per
journey, step, arm and channel then adds up to the journey's revenue, the holdout's excepted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.delivery.models import SENT, Delivery
from app.settings import get_settings
from channels import registry


def windows() -> dict[str, timedelta]:
    """Each channel's window: CARILLON_ATTRIBUTION_WINDOWS, else what the channel declares."""
    configured = get_settings().attribution_windows_by_channel()
    return {
        name: configured.get(name, spec.attribution_window)
        for name, spec in registry.specs().items()
    }


def last_touch(session: Session, instance_id: int, at: datetime) -> Delivery | None:
    limits = windows()
    sent = session.scalars(
        select(Delivery)
        .where(
            Delivery.instance_id == instance_id,
            Delivery.status == SENT,
            Delivery.sent_at <= at,
        )
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
    )
    for delivery in sent:
        window = limits.get(delivery.channel, timedelta(0))
        if delivery.sent_at is not None and window and at - delivery.sent_at <= window:
            return delivery
    return None
