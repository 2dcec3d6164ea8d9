"""Stage 2: resolve each stored event to a profile and run the journeys it concerns.

Each event is processed in its own transaction and marked processed in it, so a redelivered
job, a crash half-way through a batch or a sweep finds only what is still to do.

An event whose routing raises is retried (the broker, then the sweeper) but not forever: each
failure is counted on the row with its reason, and after `MAX_ATTEMPTS` the event is marked
failed, left out of every retry, and shown to ops (`/ops/queues`, `carillon queues`). A lost
connection is not the event's fault and is not counted: the database being away must not
fail good events.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from app import clock
from app.db import is_postgres, session_scope
from app.events.models import Event
from app.journeys import runtime
from app.ops import instruments, logs
from app.profiles import service as profiles
from app.profiles.view import view

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Errors of the connection, not of the event (the database restarting, a dropped socket).
TRANSIENT = (OperationalError, InterfaceError)


def process_one(event_id: int) -> None:
    with logs.scope():  # the ids bound below stay on this event's log lines
        _process_one(event_id)


def _process_one(event_id: int) -> None:
    with session_scope() as session:
        stmt = select(Event).where(
            Event.id == event_id, Event.processed_at.is_(None), Event.failed_at.is_(None)
        )
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        event = session.scalars(stmt).first()
        if event is None:
            return  # done already, or another worker has it right now
        logs.bind(message_id=event.message_id)
        profile = profiles.apply_event(session, event)
        if profile is None:
            # Stored just before its person was erased: it must not bring them back.
            event.payload, event.user_id, event.anonymous_id = {}, None, None
            event.message_id = f"erased:{event.id}"
            event.processed_at = clock.now()
            instruments.count_dropped_erased("routing")
            return
        event.profile_id = profile.id
        logs.bind(profile_id=profile.id)
        if event.type == "track":
            runtime.on_event(session, event, view(session, profile))
        event.processed_at = clock.now()
    log.info("event %s routed (%s %s)", event_id, event.type, event.name or "")


def record_failure(event_id: int, error: Exception) -> bool:
    """Count a failed routing attempt on the event's row (atomically: two workers failing the
    same redelivered event count twice); True while it may be retried."""
    text = str(error).strip()
    reason = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:1000]
    with session_scope() as session:
        attempts = session.scalar(
            update(Event)
            .where(Event.id == event_id, Event.processed_at.is_(None), Event.failed_at.is_(None))
            .values(routing_attempts=Event.routing_attempts + 1, routing_error=reason)
            .returning(Event.routing_attempts)
        )
        if attempts is None:
            return False  # routed meanwhile, or given up already
        if attempts < MAX_ATTEMPTS:
            return True
        session.execute(update(Event).where(Event.id == event_id).values(failed_at=clock.now()))
    log.error("event %s failed for good after %d attempts: %s", event_id, attempts, reason)
    return False


def process_many(event_ids: list[int]) -> None:
    """In order: a batch from one SDK usually holds one person's events in sequence. A poison
    event does not hold up the others: each is routed in its own transaction."""
    retry = []
    for event_id in event_ids:
        try:
            process_one(event_id)
        except Exception as exc:
            log.exception("event %s could not be processed", event_id)
            if isinstance(exc, TRANSIENT) or record_failure(event_id, exc):
                retry.append(event_id)
    if retry:
        # Raising lets the broker retry the failed ones; the rest are marked done already.
        raise RuntimeError(f"events not processed: {retry}")
