"""The scheduler's part: each running broadcast plans the messages (or starts the journey
trips) of its recipients whose turn has come, a chunk per transaction, within its rate.

A chunk locks the broadcast's row (SKIP LOCKED: two schedulers never run one broadcast's
chunk at once, and a pause waits for the chunk in progress), takes the recipients due, and
for each writes the delivery (the outbox, as a transactional send does: queued after commit,
then consent, quiet hours, frequency caps and budgets at send time like any marketing
message) and marks the recipient in the same transaction. A chunk that fails or whose
process dies rolls back whole: its recipients are still pending and the next chunk takes
them, once. The delivery's key (one per broadcast and person) makes a second message for a
person impossible even then.

The rate is a token bucket kept on the broadcast's row: `rate` tokens a second, at most one
scheduler interval's worth (or one second's) saved up.
"""

from __future__ import annotations

import hashlib
import logging
import math
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app import clock
from app.broadcasts.loader import BroadcastDefinition, SentMessage, parse_broadcast
from app.broadcasts.models import (
    DONE,
    ENTERED,
    PENDING,
    QUEUED,
    RUNNING,
    SKIPPED,
    Broadcast,
    Recipient,
)
from app.broadcasts.source import source_of
from app.db import is_postgres, session_scope
from app.delivery import outbox
from app.delivery.models import Delivery
from app.journeys import catalog, lifecycle, runtime
from app.journeys.steps import StepContext
from app.journeys.templates import TemplateRenderError
from app.messages.service import compose
from app.profiles.consent import unreachable
from app.profiles.models import Profile
from app.profiles.view import views
from app.segments.expiry import latest_event
from app.settings import get_settings

log = logging.getLogger(__name__)

BATCH_SIZE = 500


def capacity(rate_per_second: float) -> float:
    """The most tokens saved up: what one scheduler tick may plan (one second's at least)."""
    return rate_per_second * max(get_settings().scheduler_interval_seconds, 1.0)


def _claim(session: Session, broadcast_id: str) -> Broadcast | None:
    stmt = select(Broadcast).where(Broadcast.id == broadcast_id, Broadcast.state == RUNNING)
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalars(stmt).first()


def _allowance(broadcast: Broadcast, now: datetime, most: int) -> int:
    """How many this chunk may plan, the tokens refilled to now."""
    rate = broadcast.rate_per_second
    if rate is None:
        return most
    elapsed = max((now - broadcast.tokens_at).total_seconds(), 0.0)
    broadcast.tokens = min(capacity(rate), broadcast.tokens + elapsed * rate)
    broadcast.tokens_at = now
    return min(most, math.floor(broadcast.tokens))


def _due(session: Session, broadcast_id: str, now: datetime, limit: int) -> list[Recipient]:
    stmt = (
        select(Recipient)
        .where(
            Recipient.broadcast_id == broadcast_id,
            Recipient.state == PENDING,
            Recipient.due_at <= now,
        )
        .order_by(Recipient.due_at, Recipient.profile_id)
        .limit(limit)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def _pending_left(session: Session, broadcast_id: str) -> bool:
    mine = (Recipient.broadcast_id == broadcast_id) & (Recipient.state == PENDING)
    return bool(session.scalar(select(exists().where(mine))))


def key_of(broadcast_id: str, profile_id: str) -> str:
    """The delivery's idempotency key: one message per broadcast and person, whatever
    happens (a separator no id holds, so two pairs never meet)."""
    return hashlib.sha256(f"broadcast\x00{broadcast_id}\x00{profile_id}".encode()).hexdigest()


def _planned(session: Session, keys: list[str]) -> dict[str, int]:
    """The deliveries these keys already have: none, unless a recipient's state was lost."""
    rows = session.execute(
        select(Delivery.idempotency_key, Delivery.id).where(Delivery.idempotency_key.in_(keys))
    )
    return {str(key): delivery_id for key, delivery_id in rows}


def _settle(
    session: Session,
    definition: BroadcastDefinition,
    recipient: Recipient,
    person: dict[str, Any] | None,
    already: dict[str, int],
    now: datetime,
) -> None:
    recipient.done_at = now
    if person is None:
        recipient.state, recipient.reason = SKIPPED, "erased, or merged into another profile"
    elif definition.message is not None:
        _send(session, definition.id, definition.message, recipient, person, already)
    elif definition.journey is not None:
        _start_trip(session, definition.journey, recipient, person)


def _send(
    session: Session,
    broadcast_id: str,
    message: SentMessage,
    recipient: Recipient,
    person: dict[str, Any],
    already: dict[str, int],
) -> None:
    why = unreachable(message.channel, person, transactional=False)
    if why is not None:
        recipient.state, recipient.reason = SKIPPED, why
        return
    try:
        content = compose(message.channel, message.versions, person, message.name, {})
    except TemplateRenderError as exc:
        recipient.state, recipient.reason = SKIPPED, f"the message cannot be made: {exc}"
        return
    key = key_of(broadcast_id, recipient.profile_id)
    if (planned := already.get(key)) is not None:  # its row was put back to pending by hand
        recipient.state, recipient.delivery_id = QUEUED, planned
        return
    delivery = outbox.plan_without_trip(
        session,
        recipient.profile_id,
        (source_of(broadcast_id), f"message:{message.name}"),
        message.channel,
        content,
        (key, key),
    )
    recipient.state, recipient.delivery_id = QUEUED, delivery.id


def _start_trip(
    session: Session, journey_id: str, recipient: Recipient, person: dict[str, Any]
) -> None:
    """A trip of the journey, as if its trigger fired: its re-entry rule holds, its splits
    draw an arm, its messages follow the journey's own policy. The trip reads the person's
    latest event as its `event`, as a trip started by a segment's window does."""
    found = [(v, j) for v, j in catalog.current_journeys(session) if j.id == journey_id]
    if not found or not found[0][1].enabled:
        recipient.state, recipient.reason = SKIPPED, f"journey {journey_id} is not live"
        return
    version_id, journey = found[0]
    profile_id = recipient.profile_id
    event = latest_event(session, profile_id)
    started = None
    if lifecycle.may_enter(session, journey, profile_id) and event is not None:
        started = lifecycle.start(session, journey, version_id, profile_id, event)
    if started is None or event is None:
        recipient.state = SKIPPED
        recipient.reason = f"already on journey {journey_id}, or its re_entry keeps them out"
        return
    runtime.advance(StepContext(session, started, journey, event.payload, person))
    recipient.state = ENTERED


@lru_cache(maxsize=16)
def _definition(source: str, file: str) -> BroadcastDefinition:
    """A started broadcast's text never changes: compiled once per process, not per chunk."""
    return parse_broadcast(source, file)


def run_chunk(broadcast_id: str, batch_size: int = BATCH_SIZE) -> int | None:
    """Plan one chunk of one broadcast; how many recipients it settled, None when it could
    not move on (not running, another scheduler has it, nobody due, or the rate is spent)."""
    with session_scope() as session:
        broadcast = _claim(session, broadcast_id)
        if broadcast is None:
            return None
        now = clock.now()
        allowed = _allowance(broadcast, now, batch_size)
        if allowed < 1:
            return None
        recipients = _due(session, broadcast_id, now, allowed)
        if not recipients:
            if not _pending_left(session, broadcast_id):
                broadcast.state, broadcast.finished_at, broadcast.updated_at = DONE, now, now
                log.info("broadcast %s done", broadcast_id)
            return None
        definition = _definition(broadcast.source, broadcast.file)
        ids = [recipient.profile_id for recipient in recipients]
        live = session.scalars(
            select(Profile).where(
                Profile.id.in_(ids), Profile.merged_into.is_(None), Profile.erased_at.is_(None)
            )
        )
        people = views(session, list(live))
        already = _planned(session, [key_of(broadcast_id, profile_id) for profile_id in ids])
        for recipient in recipients:
            person = people.get(recipient.profile_id)
            _settle(session, definition, recipient, person, already, now)
        if broadcast.rate_per_second is not None:
            broadcast.tokens -= len(recipients)
        broadcast.updated_at = now
        log.info("broadcast %s: %d recipients settled", broadcast_id, len(recipients))
        return len(recipients)


def running(session: Session) -> list[str]:
    return list(session.scalars(select(Broadcast.id).where(Broadcast.state == RUNNING)))


def send_due(batch_size: int = BATCH_SIZE) -> int:
    """Every running broadcast's due recipients, a chunk per transaction, until each is
    caught up or out of rate; how many were settled."""
    with session_scope() as session:
        ids = running(session)
    done = 0
    for broadcast_id in ids:
        while (settled := run_chunk(broadcast_id, batch_size)) is not None:
            done += settled
    return done
