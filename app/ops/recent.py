"""The latest deliveries, newest first: what a newcomer running `make run` wants to see after
posting a first event (which message, to whom, and why it did or did not go out), without
opening the database."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.delivery.models import Delivery

LIMIT = 20


@dataclass
class RecentDelivery:
    id: int
    at: str
    journey_id: str
    step_path: str
    channel: str
    status: str
    profile_id: str
    note: str


def recent_deliveries(session: Session, limit: int = LIMIT) -> list[dict[str, Any]]:
    rows = session.scalars(select(Delivery).order_by(Delivery.id.desc()).limit(limit)).all()
    return [
        asdict(
            RecentDelivery(
                id=d.id,
                at=d.updated_at.isoformat(timespec="seconds"),
                journey_id=d.journey_id,
                step_path=d.step_path,
                channel=d.channel,
                status=d.status,
                profile_id=d.profile_id,
                note=d.error or "",
            )
        )
        for d in rows
    ]
