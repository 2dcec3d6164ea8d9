"""Entering and leaving journeys: re-entry rules, exits, and moving trips on profile merges."""

from __future__ import annotations

import logging
import math
from typing import Any

from sqlalchemy import ColumnElement, exists, select, true, update
from sqlalchemy.orm import Session

from app import clock
from app.analytics import attribution
from app.db import dialect_insert, is_postgres
from app.delivery import models as delivery
from app.delivery import outbox
from app.delivery import state as delivery_state
from app.delivery.models import Delivery
from app.events.models import Event
from app.journeys import catalog
from app.journeys.conditions import ConditionEvalError
from app.journeys.definition import Journey, SendStep
from app.journeys.models import ACTIVE, JourneyInstance, Timer
from channels import registry

log = logging.getLogger(__name__)

COMPLETED = "completed"
EXITED = "exited"
CONVERTED = "converted"
# The step path of the delivery that takes a person out of an audience a `send` step with
# `remove_on_exit` put them in: `<send step path>/remove`, unique per trip like any delivery.
REMOVAL_SUFFIX = "/remove"
MAX_REVENUE = 1e14  # journey_instances.revenue is NUMERIC(18, 4)
# Audience additions that went, or may have gone, out: those are the ones to undo.
_ADDED = (delivery.SENT, delivery.DRY_RUN, delivery.SENDING)


def may_enter(session: Session, journey: Journey, profile_id: str) -> bool:
    """At most one live trip per person and journey, then the journey's `re_entry` rule: one
    query whatever the rule."""
    mine = (JourneyInstance.journey_id == journey.id) & (JourneyInstance.profile_id == profile_id)
    live: ColumnElement[bool] = JourneyInstance.status == ACTIVE
    barrier: ColumnElement[bool]
    rule = journey.re_entry
    if rule.mode == "always":
        barrier = live
    elif rule.mode == "never":
        barrier = true()  # any trip, live or ended
    elif rule.cooldown is None:  # the loader gives every cooldown rule its duration
        raise ValueError(f"journey {journey.id}: re_entry cooldown without a duration")
    else:
        barrier = live | (JourneyInstance.entered_at > clock.now() - rule.cooldown)
    return not session.scalar(select(exists().where(mine, barrier)))


def start(
    session: Session, journey: Journey, version_id: int, profile_id: str, event: Event
) -> JourneyInstance | None:
    now = clock.now()
    # One statement, where a savepoint around an INSERT took three: a live trip already
    # there (another worker started the same one first) is a conflict with
    # uq_journey_instances_live, and nothing is inserted.
    stmt = (
        dialect_insert(session)(JourneyInstance)
        .values(
            journey_id=journey.id,
            journey_version_id=version_id,
            profile_id=profile_id,
            trigger_event_id=event.id,
            status=ACTIVE,
            cursor=journey.steps[0].path,
            entered_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(JourneyInstance)
    )
    instance = session.scalars(stmt).first()
    if instance is None:
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


def concerned(
    session: Session, profile_id: str
) -> tuple[list[JourneyInstance], list[JourneyInstance]]:
    """The person's trips an event may move, in one query, locked like `live_instances`: the
    live ones, and those that reached their end while a message they planned is still waiting
    in the queue (an exit event must still stop that message)."""
    pending = exists().where(
        Delivery.instance_id == JourneyInstance.id,
        Delivery.status == delivery.PENDING,
        Delivery.step_path.not_like(f"%{REMOVAL_SUFFIX}"),
    )
    stmt = (
        select(JourneyInstance)
        .where(
            JourneyInstance.profile_id == profile_id,
            (JourneyInstance.status == ACTIVE) | ((JourneyInstance.status == COMPLETED) & pending),
        )
        .order_by(JourneyInstance.id)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(of=JourneyInstance)
    found = list(session.scalars(stmt))
    return (
        [instance for instance in found if instance.status == ACTIVE],
        [instance for instance in found if instance.status == COMPLETED],
    )


def finish(instance: JourneyInstance, status: str, reason: str) -> None:
    now = clock.now()
    instance.status = status
    instance.exit_reason = reason
    instance.ended_at = now
    instance.updated_at = now


def exit_instance(
    session: Session,
    instance: JourneyInstance,
    reason: str,
    status: str = EXITED,
    *,
    undo_audiences: bool = True,
) -> None:
    """Leave the journey at once: pending waits and not-yet-sent messages are cancelled, and
    audience additions marked `remove_on_exit` are undone (unless `undo_audiences` is False)."""
    finish(instance, status, reason)
    session.execute(
        update(Timer)
        .where(Timer.instance_id == instance.id, Timer.status == "pending")
        .values(status="cancelled")
    )
    delivery_state.cancel(
        session,
        (Delivery.instance_id == instance.id) & Delivery.step_path.not_like(f"%{REMOVAL_SUFFIX}"),
        reason,
        clock.now(),
    )
    if undo_audiences:
        plan_audience_removals(session, instance)
    log.info("instance %s of %s exited: %s", instance.id, instance.journey_id, reason)


def plan_audience_removals(
    session: Session, instance: JourneyInstance, *, every: bool = False
) -> int:
    """For each audience this trip added the person to with `remove_on_exit` (with `every`:
    whatever the step says, as an erasure needs), plan the removal: an outbox row like any
    message, so it is retried, swept and recorded the same way. Planned at most once per step
    (a removal row already there is left alone). Returns how many were planned."""
    rows = list(session.scalars(select(Delivery).where(Delivery.instance_id == instance.id)))
    planned = {row.step_path for row in rows}
    journey = catalog.journey_of_version(session, instance.journey_version_id)
    count = 0
    for row in rows:
        removal = f"{row.step_path}{REMOVAL_SUFFIX}"
        undo = registry.spec(row.channel).undo
        if (
            undo is None
            or row.status not in _ADDED
            or row.step_path.endswith(REMOVAL_SUFFIX)
            or removal in planned
        ):
            continue
        step = journey.step(row.step_path)
        if every or (isinstance(step, SendStep) and step.remove_on_exit):
            outbox.plan(session, instance, removal, row.channel, undo(row.content))
            count += 1
    return count


def record_conversion(
    session: Session, instance: JourneyInstance, event: Event, variables: dict[str, Any]
) -> None:
    """The goal is reached: when, what it was worth, and which message earned it. A trip already
    over (a late conversion) undoes its audience additions here; a live one does when `convert`
    ends it."""
    instance.converted_at = event.timestamp
    _credit_revenue(session, instance, event, variables)
    if instance.status != ACTIVE:
        plan_audience_removals(session, instance)
    log.info(
        "instance %s of %s converted (arm %s) on %s",
        instance.id,
        instance.journey_id,
        instance.arm,
        event.name,
    )


def _credit_revenue(
    session: Session, instance: JourneyInstance, event: Event, variables: dict[str, Any]
) -> None:
    goal = catalog.journey_of_version(session, instance.journey_version_id).goal
    if goal is None or goal.value is None:
        return
    try:
        value = goal.value.number(variables)
        if not (math.isfinite(value) and abs(value) < MAX_REVENUE):
            raise ConditionEvalError(f"{value} is out of range")
    except ConditionEvalError as exc:
        # The conversion still counts; ops see why its amount is missing.
        log.warning("instance %s: conversion without revenue: goal value: %s", instance.id, exc)
        return
    touch = attribution.last_touch(session, instance.id, event.timestamp)
    instance.revenue, instance.currency = value, goal.currency
    instance.attributed_delivery_id = touch.id if touch is not None else None


def convert(
    session: Session, instance: JourneyInstance, event: Event, variables: dict[str, Any]
) -> None:
    """The goal is reached: record it and end the trip, nothing more to send."""
    record_conversion(session, instance, event, variables)
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
            # The person stays on the target's trip of this journey, and in its audiences.
            exit_instance(
                session, instance, f"profile merged into {target_id}", undo_audiences=False
            )
    session.execute(
        update(JourneyInstance)
        .where(JourneyInstance.profile_id == source_id)
        .values(profile_id=target_id)
    )
