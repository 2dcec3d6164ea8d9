"""Writing deliveries: the outbox row commits with the step, the queue hears of it after."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from app import clock
from app.db import dialect_insert
from app.delivery import history, models
from app.delivery.jobs import send_delivery
from app.delivery.models import Delivery
from app.journeys.models import JourneyInstance
from app.queue import enqueue_spread
from app.settings import get_settings
from channels import registry

log = logging.getLogger(__name__)

# The history kind that says which channel a `channel: preferred` send took, and why.
CHANNEL_CHOSEN = "channel"


def units(channel: str, content: dict[str, Any]) -> int:
    """What the provider will bill the rendered message as (an SMS's segments), for its cost."""
    measure = registry.spec(channel).units
    return measure(content) if measure is not None and content else 1


def _row(
    instance: JourneyInstance,
    step_path: str,
    channel: str,
    content: dict[str, Any],
    status: str,
    error: str | None = None,
) -> Delivery:
    now = clock.now()
    return Delivery(
        instance_id=instance.id,
        step_path=step_path,
        journey_id=instance.journey_id,
        profile_id=instance.profile_id,
        channel=channel,
        arm=instance.arm,
        content=content,
        status=status,
        attempts=0,
        error=error,
        units=units(channel, content) if status == models.PENDING else None,
        created_at=now,
        enqueued_at=now,
        updated_at=now,
    )


def plan(
    session: Session,
    instance: JourneyInstance,
    step_path: str,
    channel: str,
    content: dict[str, Any],
    chosen: str | None = None,
) -> Delivery:
    """Add the message to the outbox. It is queued once its row is written (`_queue_planned`),
    so a batch of trips planning many messages writes them in one multi-row INSERT. `chosen`
    says why this channel (a `channel: preferred` send): the first line of its history, which
    needs the row's id now."""
    delivery = _row(instance, step_path, channel, content, models.PENDING)
    session.add(delivery)
    if chosen is not None:
        _chosen(session, delivery, chosen)
    return delivery


def _chosen(session: Session, delivery: Delivery, note: str) -> None:
    session.flush()  # the history row needs the delivery's id
    history.record(session, delivery.id, CHANNEL_CHOSEN, note, "journey")


@event.listens_for(Session, "pending_to_persistent")
def _queue_planned(session: Session, instance: object) -> None:
    # Registered inside a savepoint, the enqueue is dropped with it if it rolls back.
    if isinstance(instance, Delivery) and instance.status == models.PENDING:
        _queue(session, instance)


def _queue(session: Session, delivery: Delivery) -> None:
    every = get_settings().delivery_batch_size  # a send job takes a batch of its channel
    enqueue_spread(session, send_delivery(delivery.channel), delivery.id, every)
    _log_planned(delivery)


def _log_planned(delivery: Delivery) -> None:
    log.info(
        "delivery %s planned: %s step %s on %s (%s)",
        delivery.id,
        delivery.journey_id,
        delivery.step_path,
        delivery.channel,
        delivery.status,
        extra={
            "delivery_id": delivery.id,
            "instance_id": delivery.instance_id,
            "profile_id": delivery.profile_id,
        },
    )


def plan_without_trip(
    session: Session,
    profile_id: str,
    source: tuple[str, str],
    channel: str,
    content: dict[str, Any],
    idempotency: tuple[str, str] | None = None,
) -> Delivery:
    """Add a message that belongs to no trip to the outbox: a broadcast's. The same row,
    queue and send-time checks as a journey's message. `source` is (journey_id, step_path):
    the broadcast and `message:<name>`; `idempotency` is (hashed key, request digest), which
    keeps a broadcast to one message per person."""
    delivery = Delivery(**_without_trip(profile_id, source, channel, content, idempotency))
    session.add(delivery)
    session.flush()  # the id is the answer; a reused idempotency key fails here
    return delivery


def plan_request(
    session: Session,
    profile_id: str,
    source: tuple[str, str],
    channel: str,
    content: dict[str, Any],
    idempotency: tuple[str, str] | None,
) -> int | None:
    """`plan_without_trip` for a transactional send (`POST /v1/messages`), where each
    statement is on the answer's time: one INSERT … RETURNING, no ORM object and no savepoint.
    `source` is the journey whose named message it is and `message:<name>`, or the inline
    marker. With `idempotency`, ON CONFLICT DO NOTHING: None when the key was used before
    (on PostgreSQL once the transaction that used it commits), the row's id otherwise."""
    values = _without_trip(profile_id, source, channel, content, idempotency)
    stmt = dialect_insert(session)(Delivery).values(values).returning(Delivery.id)
    if idempotency is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=[Delivery.idempotency_key])
    delivery_id: int | None = session.execute(stmt).scalar()
    if delivery_id is not None:
        _queue(session, Delivery(id=delivery_id, **values))
    return delivery_id


def _without_trip(
    profile_id: str,
    source: tuple[str, str],
    channel: str,
    content: dict[str, Any],
    idempotency: tuple[str, str] | None,
) -> dict[str, Any]:
    now = clock.now()
    key, digest = idempotency or (None, None)
    return {
        "instance_id": None,
        "step_path": source[1],
        "journey_id": source[0],
        "profile_id": profile_id,
        "channel": channel,
        "arm": None,
        "content": content,
        "status": models.PENDING,
        "attempts": 0,
        "units": units(channel, content),
        "created_at": now,
        "enqueued_at": now,
        "updated_at": now,
        "idempotency_key": key,
        "request_digest": digest,
    }


def plan_skipped(
    session: Session, instance: JourneyInstance, step_path: str, channel: str, reason: str
) -> Delivery:
    """Record a `channel: preferred` send none of the person's channels would do for, with
    why each was passed over: nothing is sent, and the trip goes on."""
    delivery = _row(instance, step_path, channel, {}, models.SKIPPED, reason)
    session.add(delivery)
    _chosen(session, delivery, reason)
    _log_planned(delivery)
    return delivery


def plan_failed(
    session: Session,
    instance: JourneyInstance,
    step_path: str,
    channel: str,
    error: str,
    chosen: str | None = None,
) -> Delivery:
    """Record a message that could not even be rendered, with the reason."""
    delivery = _row(instance, step_path, channel, {}, models.FAILED, error)
    session.add(delivery)
    session.flush()
    if chosen is not None:
        _chosen(session, delivery, chosen)
    _log_planned(delivery)
    return delivery
