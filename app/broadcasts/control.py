"""A broadcast's state, and the one place it changes: start (the audience snapshot),
pause, resume, cancel. The scheduler's chunk (`sending`) moves a running broadcast to done.

Each transition locks the broadcast's row, so it waits for a chunk in progress: once `pause`
returns, no further message of the broadcast is planned until `resume`. An illegal move
(resuming a running broadcast, starting one twice) raises `Refused` and changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import clock
from app.broadcasts import audience
from app.broadcasts.loader import BroadcastDefinition
from app.broadcasts.models import (
    CANCELLED,
    PAUSED,
    PENDING,
    RUNNING,
    WITHDRAWN,
    Broadcast,
    Recipient,
)
from app.broadcasts.sending import capacity
from app.broadcasts.source import source_of
from app.delivery import state as delivery_state
from app.delivery.models import Delivery

log = logging.getLogger(__name__)


class Refused(Exception):
    """A transition that does not apply to the broadcast as it is; nothing changed."""


class Unknown(Refused):
    """No broadcast of that id was started."""


def _locked(session: Session, broadcast_id: str) -> Broadcast:
    found = session.scalars(
        select(Broadcast).where(Broadcast.id == broadcast_id).with_for_update()
    ).first()
    if found is None:
        raise Unknown(
            f"broadcast {broadcast_id!r} was never started (carillon broadcasts list shows "
            "the files and their state)"
        )
    return found


def start(session: Session, definition: BroadcastDefinition) -> Broadcast:
    """Take the audience now and let the scheduler send from `at` on."""
    started = session.get(Broadcast, definition.id)
    if started is not None:
        when = f"{started.started_at:%Y-%m-%d %H:%M}"
        raise Refused(
            f"broadcast {definition.id!r} was already started on {when}Z and is "
            f"{started.state}; a broadcast is sent once: copy the file under a new id to send "
            "it again"
        )
    now = clock.now()
    rate = definition.rate_per_second
    broadcast = Broadcast(
        id=definition.id,
        name=definition.name,
        file=definition.file,
        source=definition.source,
        state=RUNNING,
        rate_per_second=rate,
        tokens=capacity(rate) if rate is not None else 0.0,
        tokens_at=now,
        started_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(broadcast)
    except IntegrityError:  # started by another command at the same moment
        raise Refused(f"broadcast {definition.id!r} was just started by someone else") from None
    total = audience.snapshot(session, definition)
    log.info("broadcast %s started: %d recipients (%s)", definition.id, total, definition.audience)
    return broadcast


def _move(broadcast: Broadcast, allowed: tuple[str, ...], to: str, verb: str) -> datetime:
    if broadcast.state not in allowed:
        raise Refused(f"broadcast {broadcast.id!r} is {broadcast.state}: it cannot be {verb}")
    now = clock.now()
    broadcast.state, broadcast.updated_at = to, now
    log.info("broadcast %s %s", broadcast.id, verb)
    return now


def pause(session: Session, broadcast_id: str) -> Broadcast:
    broadcast = _locked(session, broadcast_id)
    _move(broadcast, (RUNNING,), PAUSED, "paused")
    return broadcast


def resume(session: Session, broadcast_id: str) -> Broadcast:
    broadcast = _locked(session, broadcast_id)
    _move(broadcast, (PAUSED,), RUNNING, "resumed")
    return broadcast


def cancel(session: Session, broadcast_id: str) -> Broadcast:
    """Nobody else gets it: the recipients still to come are withdrawn, and the messages
    already planned but not gone yet (held by quiet hours, a cap, a budget or the queue)
    are cancelled."""
    broadcast = _locked(session, broadcast_id)
    now = _move(broadcast, (RUNNING, PAUSED), CANCELLED, "cancelled")
    broadcast.finished_at = now
    session.execute(
        update(Recipient)
        .where(Recipient.broadcast_id == broadcast_id, Recipient.state == PENDING)
        .values(state=WITHDRAWN, done_at=now)
    )
    delivery_state.cancel(
        session,
        Delivery.journey_id == source_of(broadcast_id),
        f"broadcast {broadcast_id} cancelled",
        now,
    )
    return broadcast
