"""Stage 2: resolve each stored event to a profile and run the journeys it concerns.

Each event is processed in its own transaction and marked processed in it, so a redelivered
job, a crash half-way through a batch or a sweep finds only what is still to do.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from app import clock
from app.db import is_postgres, session_scope
from app.events.models import Event
from app.journeys import runtime
from app.ops import logs
from app.profiles import service as profiles
from app.profiles.view import view

log = logging.getLogger(__name__)


def process_one(event_id: int) -> None:
    with logs.scope():  # the ids bound below stay on this event's log lines
        _process_one(event_id)


def _process_one(event_id: int) -> None:
    with session_scope() as session:
        stmt = select(Event).where(Event.id == event_id, Event.processed_at.is_(None))
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        event = session.scalars(stmt).first()
        if event is None:
            return  # done already, or another worker has it right now
        logs.bind(message_id=event.message_id)
        profile = profiles.apply_event(session, event)
        event.profile_id = profile.id
        logs.bind(profile_id=profile.id)
        if event.type == "track":
            runtime.on_event(session, event, view(session, profile))
        event.processed_at = clock.now()
    log.info("event %s routed (%s %s)", event_id, event.type, event.name or "")


def process_many(event_ids: list[int]) -> None:
    """In order: a batch from one SDK usually holds one person's events in sequence."""
    failed = []
    for event_id in event_ids:
        try:
            process_one(event_id)
        except Exception:
            log.exception("event %s could not be processed", event_id)
            failed.append(event_id)
    if failed:
        # Raising lets the broker retry the failed ones; the rest are marked done already.
        raise RuntimeError(f"events not processed: {failed}")
