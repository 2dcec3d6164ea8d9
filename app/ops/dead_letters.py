"""Dead letters: deliveries that will not be sent unless someone acts, and the replay action.

A dead letter is a `failed` delivery (the provider refused it, or it could not be rendered), a
`dead` one (transient errors until the channel's attempts ran out) or an `unknown` one (its
worker stopped during the provider call: a person checks with the provider whether it went out,
and replays it only if not; never automatic). The definition lives in
`is_dead_letter()` alone: the queue figures, the metrics, the dashboard and replay
all select through it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from app import clock
from app.db import after_commit
from app.delivery import models, state
from app.delivery.models import Delivery
from app.errors import Conflict, NotFound

log = logging.getLogger(__name__)

DEAD_STATUSES = state.DEAD_LETTERS


def is_dead_letter() -> ColumnElement[bool]:
    """The one definition of a dead letter, as a SQL condition on `deliveries`."""
    return Delivery.status.in_(DEAD_STATUSES)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    channel: str
    journey_id: str
    step_path: str
    profile_id: str
    status: str
    attempts: int
    status_code: int | None
    error: str | None
    failed_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "failed_at": self.failed_at.isoformat()}


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Delivery).where(is_dead_letter())) or 0


def listing(session: Session, limit: int = 50) -> list[DeadLetter]:
    """The newest dead letters first."""
    rows = session.scalars(
        select(Delivery)
        .where(is_dead_letter())
        .order_by(Delivery.updated_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    return [
        DeadLetter(
            id=d.id,
            channel=d.channel,
            journey_id=d.journey_id,
            step_path=d.step_path,
            profile_id=d.profile_id,
            status=d.status,
            attempts=d.attempts,
            status_code=d.status_code,
            error=d.error,
            failed_at=d.updated_at,
        )
        for d in rows
    ]


@dataclass(frozen=True)
class Replay:
    delivery_id: int
    replayed: bool  # False: it was already pending again (a second click changes nothing)
    status: str


def replay(session: Session, delivery_id: int) -> Replay:
    """Put a dead letter back in the outbox and hand it to its channel's queue after commit.

    Idempotent: the row flips `failed → pending` in one conditional UPDATE, so a double click
    or two operators enqueue it once; a row already pending again answers `replayed=False`. The
    send itself still re-checks the row, so a stale queue message cannot send it twice.
    A row that failed before it could be rendered has nothing to send and is refused.
    """
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    if delivery.status == models.PENDING:
        return Replay(delivery_id, False, delivery.status)
    if delivery.status not in DEAD_STATUSES:
        raise Conflict(
            f"delivery {delivery_id} is {delivery.status}, not a dead letter; "
            "only failed, dead or unknown deliveries can be replayed"
        )
    if not delivery.content:
        raise Conflict(
            f"delivery {delivery_id} was never rendered ({delivery.error}); "
            "fix the journey template instead"
        )
    now = clock.now()
    was = f"was {delivery.status} after {delivery.attempts} attempt(s): {delivery.error or ''}"
    if not state.replay(session, delivery, was.rstrip(": "), now):
        return Replay(delivery_id, False, models.PENDING)  # someone replayed it first
    after_commit(
        session,
        lambda: log.info(
            "delivery %s replayed by ops", delivery_id, extra={"delivery_id": delivery_id}
        ),
    )
    return Replay(delivery_id, True, models.PENDING)
