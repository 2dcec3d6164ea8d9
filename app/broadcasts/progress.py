"""What `carillon broadcasts status|list` and `/ops` show of a started broadcast: how far it
got (recipients settled of the audience), who was skipped and why, and what became of the
messages planned (sent, held, suppressed at send time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.broadcasts.models import (
    ENTERED,
    PENDING,
    QUEUED,
    SKIPPED,
    WITHDRAWN,
    Broadcast,
    Recipient,
)
from app.broadcasts.source import source_of
from app.delivery.models import Delivery

MOST_REASONS = 10


@dataclass(frozen=True)
class Progress:
    id: str
    name: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    total: int
    queued: int
    entered: int  # started a trip of the broadcast's journey
    skipped: int
    withdrawn: int
    pending: int
    next_due: datetime | None  # the earliest turn still to come
    skipped_because: dict[str, int] = field(default_factory=dict)  # the commonest reasons
    deliveries: dict[str, int] = field(default_factory=dict)  # planned messages by status

    @property
    def settled(self) -> int:
        return self.queued + self.entered + self.skipped + self.withdrawn

    def bar(self, width: int = 30) -> str:
        """`[#########.....] 1,200/2,000 (60%)`, settled of the audience."""
        share = self.settled / self.total if self.total else 1.0
        filled = round(share * width)
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.settled:,}/{self.total:,} "
            f"({share:.0%})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "total": self.total,
            "settled": self.settled,
            "queued": self.queued,
            "entered": self.entered,
            "skipped": self.skipped,
            "withdrawn": self.withdrawn,
            "pending": self.pending,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "skipped_because": self.skipped_because,
            "deliveries": self.deliveries,
        }


def of(session: Session, broadcast: Broadcast) -> Progress:
    mine = Recipient.broadcast_id == broadcast.id
    counts = dict(
        session.execute(
            select(Recipient.state, func.count()).where(mine).group_by(Recipient.state)
        ).all()
    )
    reasons = session.execute(
        select(Recipient.reason, func.count())
        .where(mine, Recipient.state == SKIPPED)
        .group_by(Recipient.reason)
        .order_by(func.count().desc(), Recipient.reason)
        .limit(MOST_REASONS)
    ).all()
    next_due = session.scalar(
        select(func.min(Recipient.due_at)).where(mine, Recipient.state == PENDING)
    )
    statuses = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.journey_id == source_of(broadcast.id))
        .group_by(Delivery.status)
    ).all()
    return Progress(
        id=broadcast.id,
        name=broadcast.name,
        state=broadcast.state,
        started_at=broadcast.started_at,
        finished_at=broadcast.finished_at,
        total=sum(counts.values()),
        queued=counts.get(QUEUED, 0),
        entered=counts.get(ENTERED, 0),
        skipped=counts.get(SKIPPED, 0),
        withdrawn=counts.get(WITHDRAWN, 0),
        pending=counts.get(PENDING, 0),
        next_due=next_due,
        skipped_because={str(reason): count for reason, count in reasons},
        deliveries={status: count for status, count in sorted(statuses)},
    )


def one(session: Session, broadcast_id: str) -> Progress | None:
    broadcast = session.get(Broadcast, broadcast_id)
    return of(session, broadcast) if broadcast is not None else None


def every(session: Session) -> list[Progress]:
    """Every started broadcast, newest first."""
    rows = session.scalars(select(Broadcast).order_by(Broadcast.started_at.desc(), Broadcast.id))
    return [of(session, broadcast) for broadcast in rows]
