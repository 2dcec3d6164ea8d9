"""A delivery's history: what happened to it besides its current status, in time order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.db import dialect_insert
from app.delivery.models import DeliveryEvent


def record(
    session: Session,
    delivery_id: int,
    kind: str,
    detail: str | None,
    source: str,
    at: datetime | None = None,
    external_id: str | None = None,
) -> bool:
    """Add one moment to a delivery's history; False when `external_id` was recorded before
    (a provider replaying a webhook), so callers apply each callback once."""
    row = {
        "delivery_id": delivery_id,
        "at": at or clock.now(),
        "kind": kind,
        "detail": detail,
        "source": source,
        "external_id": external_id,
    }
    stmt = dialect_insert(session)(DeliveryEvent).values(row).on_conflict_do_nothing()
    # RETURNING, not rowcount: psycopg reports -1 (unknown) for ON CONFLICT DO NOTHING.
    return session.execute(stmt.returning(DeliveryEvent.id)).first() is not None


def of(session: Session, delivery_id: int) -> list[DeliveryEvent]:
    stmt = (
        select(DeliveryEvent)
        .where(DeliveryEvent.delivery_id == delivery_id)
        .order_by(DeliveryEvent.at, DeliveryEvent.id)
    )
    return list(session.scalars(stmt))
