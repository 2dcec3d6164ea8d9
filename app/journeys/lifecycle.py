"""Entering and leaving journeys: re-entry rules, exits, and moving trips on profile merges."""

from __future__ import annotations

import logging

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import clock
from app.db import is_postgres
from app.delivery import models as delivery
from app.delivery.models import Delivery
from app.events.models import Event
from app.journeys.definition import Journey
from app.journeys.models import ACTIVE, JourneyInstance, Timer

log = logging.getLogger(__name__)

COMPLETED = "completed"
EXITED = "exited"
CONVERTED = "converted"


def may_enter(session: Session, journey: Journey, profile_id: str) -> bool:
    """At most one live trip per person and journey, then the journey's `re_entry` rule."""
    mine = (JourneyInstance.journey_id == journey.id) & (JourneyInstance.profile_id == profile_id)
    if session.scalar(select(exists().where(mine, JourneyInstance.status == ACTIVE))):
        return False
    rule = journey.re_entry
    if rule.mode == "always":
        return True
    if rule.mode == "never":
        return not session.scalar(select(exists().where(mine)))
    assert rule.cooldown is not None
    since = clock.now() - rule.cooldown
    return not session.scalar(select(exists().where(mine, JourneyInstance.entered_at > since)))


def start(
    session: Session, journey: Journey, version_id: int, profile_id: str, event: Event
) -> JourneyInstance | None:
    now = clock.now()
    instance = JourneyInstance(
        journey_id=journey.id,
        journey_version_id=version_id,
        profile_id=profile_id,
        trigger_event_id=event.id,
        status=ACTIVE,
        cursor=journey.steps[0].path,
        entered_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(instance)
    except IntegrityError:  # another worker started the same trip first
        return None
    log.info("profile %s entered journey %s (instance %s)", profile_id, journey.id, instance.id)
    return instance


def live_instances(session: Session, profile_id: str) -> list[JourneyInstance]:
    stmt = select(JourneyInstance).where(
        JourneyInstance.profile_id == profile_id, JourneyInstance.status == ACTIVE
    )
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt))


def unsent(session: Session, profile_id: str) -> list[JourneyInstance]:
    """Trips that reached their end while a message they planned is still waiting in the
    queue: an exit event must still stop that message."""
    pending = exists().where(
        Delivery.instance_id == JourneyInstance.id, Delivery.status == delivery.PENDING
    )
    stmt = select(JourneyInstance).where(
        JourneyInstance.profile_id == profile_id, JourneyInstance.status == COMPLETED, pending
    )
    return list(session.scalars(stmt))


def finish(instance: JourneyInstance, status: str, reason: str) -> None:
    now = clock.now()
    instance.status = status
    instance.exit_reason = reason
    instance.ended_at = now
    instance.updated_at = now


def exit_instance(
    session: Session, instance: JourneyInstance, reason: str, status: str = EXITED
) -> None:
    """Leave the journey at once: pending waits and not-yet-sent messages are cancelled."""
    finish(instance, status, reason)
    session.execute(
        update(Timer)
        .where(Timer.instance_id == instance.id, Timer.status == "pending")
        .values(status="cancelled")
    )
    session.execute(
        update(Delivery)
        .where(Delivery.instance_id == instance.id, Delivery.status == delivery.PENDING)
        .values(status=delivery.CANCELLED, error=f"cancelled: {reason}", updated_at=clock.now())
    )
    log.info("instance %s of %s exited: %s", instance.id, instance.journey_id, reason)


def record_conversion(instance: JourneyInstance, event: Event) -> None:
    instance.converted_at = event.timestamp
    log.info(
        "instance %s of %s converted (arm %s) on %s",
        instance.id,
        instance.journey_id,
        instance.arm,
        event.name,
    )


def convert(session: Session, instance: JourneyInstance, event: Event) -> None:
    """The goal is reached: record it and end the trip, nothing more to send."""
    record_conversion(instance, event)
    exit_instance(session, instance, f"goal: {event.name}", CONVERTED)


def finished_unconverted(
    session: Session, profile_id: str, journey_ids: list[str]
) -> list[JourneyInstance]:
    return list(
        session.scalars(
            select(JourneyInstance).where(
                JourneyInstance.profile_id == profile_id,
                JourneyInstance.journey_id.in_(journey_ids),
                JourneyInstance.status == COMPLETED,
                JourneyInstance.converted_at.is_(None),
            )
        )
    )


def move_instances(session: Session, source_id: str, target_id: str) -> None:
    """On a profile merge, trips follow the person; a duplicate live trip of the same journey
    is exited rather than run twice."""
    target_live = {i.journey_id for i in live_instances(session, target_id)}
    for instance in live_instances(session, source_id):
        if instance.journey_id in target_live:
            exit_instance(session, instance, f"profile merged into {target_id}")
    session.execute(
        update(JourneyInstance)
        .where(JourneyInstance.profile_id == source_id)
        .values(profile_id=target_id)
    )
