"""Windows that expire: the scheduler recomputes the traits whose oldest kept event has just
left their window, a batch of people per transaction, and starts the journeys their
membership changes trigger. Only the rows due are read (an index range on `expires_at`), so
nothing scans every profile, whatever their number.

A person being routed right now is skipped (`SKIP LOCKED` on the profile row) and picked up
by the next tick; several schedulers may run at once.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.db import is_postgres, session_scope
from app.events.models import Event
from app.journeys import runtime
from app.profiles.models import Profile
from app.segments import catalog, evaluation
from app.segments.evaluation import Flip
from app.segments.models import ComputedTrait

log = logging.getLogger(__name__)


def latest_event(session: Session, profile_id: str) -> Event | None:
    """What a trip started without an event of its own (a window's expiry, a broadcast)
    reads as its `event`: the person's latest."""
    return session.scalars(
        select(Event)
        .where(Event.profile_id == profile_id, Event.processed_at.is_not(None))
        .order_by(Event.timestamp.desc(), Event.id.desc())
        .limit(1)
    ).first()


def start_journeys(
    session: Session, flips: list[Flip], event: Event, person: dict[str, Any]
) -> None:
    """The journeys these membership changes trigger, entered with the person as they are now."""
    if flips:
        changes = [(flip.segment_id, flip.on) for flip in flips]
        runtime.on_segment_changes(session, changes, event, person)


def expire_due(batch_size: int) -> int:
    """Recompute every trait whose window moved by now, `batch_size` rows per transaction;
    returns how many people were recomputed."""
    done = 0
    while True:
        with session_scope() as session:
            due = session.execute(
                select(ComputedTrait.profile_id, ComputedTrait.name)
                .where(ComputedTrait.expires_at <= clock.now())
                .order_by(ComputedTrait.expires_at)
                .limit(batch_size)
            ).all()
            names: dict[str, list[str]] = {}
            for profile_id, name in due:
                names.setdefault(profile_id, []).append(name)
            stmt = select(Profile).where(Profile.id.in_(names)).order_by(Profile.id)
            if is_postgres(session):
                stmt = stmt.with_for_update(skip_locked=True)
            people = list(session.scalars(stmt))
            definitions = catalog.current(session)
            for profile in people:
                decided = evaluation.recompute(session, definitions, profile, names[profile.id])
                event = latest_event(session, profile.id) if decided.flips else None
                if event is not None:
                    start_journeys(session, decided.flips, event, decided.person)
        done += len(people)
        if len(due) < batch_size or not people:
            return done
