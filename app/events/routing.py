"""Stage 2: resolve each stored event to a profile and run the journeys it concerns.

Events are routed a batch to a transaction and marked processed in it, so a redelivered job, a
crash half-way through a batch or a sweep finds only what is still to do. A batch claims its
events with `SKIP LOCKED` (a busy row is another worker's) and locks the people they concern
up front, in one fixed order, so two workers' batches cannot deadlock; within a batch the
events run in arrival order, which keeps each person's events in order.

An event whose routing raises is retried (the broker, then the sweeper) but not forever: each
failure is counted on the row with its reason, and after `MAX_ATTEMPTS` the event is marked
failed, left out of every retry, and shown to ops (`/ops/queues`, `carillon queues`). A lost
connection is not the event's fault and is not counted: the database being away must not
fail good events.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app import clock
from app.db import is_postgres, session_scope
from app.events.models import Event
from app.journeys import runtime
from app.ops import instruments, logs
from app.profiles import service as profiles
from app.profiles.view import view
from app.segments import evaluation as segments
from app.segments import expiry

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Errors of the connection, not of the event (the database restarting, a dropped socket).
TRANSIENT = (OperationalError, InterfaceError)
# Events per transaction. Nothing a batch plans is queued before it commits, so its first
# event waits for its last: slices this size pay the begin, claim, locks and commit once for
# many events while keeping that wait (and the locks held) to a few tens of milliseconds.
BATCH_SIZE = 25


def _claim(session: Session, event_ids: Sequence[int]) -> list[Event]:
    stmt = (
        select(Event)
        .where(Event.id.in_(event_ids), Event.processed_at.is_(None), Event.failed_at.is_(None))
        .order_by(Event.id)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def _route(session: Session, event: Event, erased_digests: set[str]) -> None:
    logs.bind(message_id=event.message_id)
    profile = profiles.apply_event(session, event, erased_digests)
    if profile is None:
        # Stored just before its person was erased: it must not bring them back.
        event.payload, event.user_id, event.anonymous_id = {}, None, None
        event.message_id = f"erased:{event.id}"
        event.processed_at = clock.now()
        instruments.count_dropped_erased("routing")
        return
    # Both in one UPDATE: the transaction makes "routed" true only with everything below.
    event.profile_id, event.processed_at = profile.id, clock.now()
    logs.bind(profile_id=profile.id)
    # Computed traits and memberships first, so the journeys below read them as they are now.
    decided = segments.on_event(session, profile, event)
    if event.type == "track":
        runtime.on_event(session, event, decided.person if decided else view(session, profile))
    if decided and decided.flips:
        # Read again after a trip ran above: its steps may have changed the person.
        person = view(session, profile) if event.type == "track" else decided.person
        expiry.start_journeys(session, decided.flips, event, person)
    # The deliveries it planned are written (and logged) while this event's ids are bound, so
    # one grep of a messageId still finds them.
    session.flush()


def _route_batch(event_ids: Sequence[int]) -> None:
    """Route the events still to do among `event_ids` in one transaction: all or none.
    Events done already, or being routed by another worker right now, are left alone."""
    with session_scope() as session:
        events = _claim(session, event_ids)
        erased_digests = profiles.lock_people(session, events)
        for event in events:
            with logs.scope():  # the ids bound by _route stay on this event's log lines
                _route(session, event, erased_digests)
    for event in events:  # once committed: a rolled-back batch routed nothing
        with logs.scope():  # the line carries the event's ids, as the ones written inside did
            logs.bind(message_id=event.message_id, profile_id=event.profile_id)
            log.info("event %s routed (%s %s)", event.id, event.type, event.name or "")


def process_one(event_id: int) -> None:
    _route_batch([event_id])


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


def _route_each(event_ids: Sequence[int]) -> list[int]:
    """One transaction per event, in order; returns the ids to retry."""
    retry = []
    for event_id in event_ids:
        try:
            process_one(event_id)
        except Exception as exc:
            log.exception("event %s could not be processed", event_id)
            if isinstance(exc, TRANSIENT) or record_failure(event_id, exc):
                retry.append(event_id)
    return retry


def process_many(event_ids: list[int]) -> None:
    """In order (a batch from one SDK usually holds one person's events in sequence),
    `BATCH_SIZE` to a transaction. A poison event does not hold up the others: a batch that
    raises is rolled back and routed again one event per transaction, so only the culprit
    fails, is counted and is retried."""
    retry = []
    for start in range(0, len(event_ids), BATCH_SIZE):
        batch = event_ids[start : start + BATCH_SIZE]
        try:
            _route_batch(batch)
        except Exception as exc:
            log.warning(
                "%d events failed as a batch (%s); routing them one by one", len(batch), exc
            )
            retry += _route_each(batch)
    if retry:
        # Raising lets the broker retry the failed ones; the rest are marked done already.
        raise RuntimeError(f"events not processed: {retry}")
