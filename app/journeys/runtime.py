"""The step runtime: what an event does to journeys, and how a trip moves from step to step.

A trip advances inside the caller's transaction until a step suspends it (a wait) or it ends,
so a step's state change and the outbox rows it writes commit together or not at all.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.events.models import Event
from app.journeys import catalog, lifecycle
from app.journeys.conditions import holds
from app.journeys.definition import Journey, WaitForStep
from app.journeys.models import ACTIVE, JourneyInstance, Timer
from app.journeys.steps import RUNNERS, Goto, Outcome, StepContext

log = logging.getLogger(__name__)


def advance(ctx: StepContext) -> None:
    instance, journey = ctx.instance, ctx.journey
    while instance.status == ACTIVE:
        step = journey.step(instance.cursor)
        outcome = RUNNERS[type(step)](ctx, step)
        if outcome is Outcome.SUSPEND:
            return
        if outcome is Outcome.EXIT:
            lifecycle.finish(instance, lifecycle.COMPLETED, f"exit at step {step.path}")
            return
        following = outcome.path if isinstance(outcome, Goto) else journey.after(step.path)
        if following is None:
            lifecycle.finish(instance, lifecycle.COMPLETED, f"reached step {step.path}")
            return
        instance.cursor = following


def continue_at(
    session: Session,
    instance: JourneyInstance,
    journey: Journey,
    path: str | None,
    profile: dict[str, Any],
) -> None:
    """Move a suspended trip to `path` (None: the end) and run it from there."""
    if path is None:
        lifecycle.finish(instance, lifecycle.COMPLETED, "reached the end")
        return
    instance.cursor = path
    trigger = session.get_one(Event, instance.trigger_event_id)
    advance(StepContext(session, instance, journey, trigger.payload, profile))


def _exit_already_seen(
    session: Session, journey: Journey, profile_id: str, event: Event, variables: dict[str, Any]
) -> bool:
    """True when this person's exit event (e.g. the order) is already recorded at or after the
    trigger's time: concurrent workers may process the two out of order."""
    exit_when = journey.exit_when
    if exit_when is None:
        return False
    later = session.scalars(
        select(Event)
        .where(
            Event.profile_id == profile_id,
            Event.name == exit_when.event,
            Event.type == "track",
            Event.timestamp >= event.timestamp,
            Event.processed_at.is_not(None),
        )
        .limit(20)
    )
    return any(
        holds(exit_when.when, {**variables, "event": e.payload}, f"{journey.id} exit_when")
        for e in later
    )


def _reached_goal(
    journey: Journey, instance: JourneyInstance, event: Event, variables: dict[str, Any]
) -> bool:
    goal = journey.goal
    if goal is None or goal.event != event.name:
        return False
    if goal.within is not None and event.timestamp > instance.entered_at + goal.within:
        return False
    return holds(goal.when, variables, f"{journey.id} goal")


def _exits(journey: Journey, event: Event, variables: dict[str, Any]) -> bool:
    exit_when = journey.exit_when
    return (
        exit_when is not None
        and exit_when.event == event.name
        and holds(exit_when.when, variables, f"{journey.id} exit_when")
    )


def _on_live_trip(
    session: Session,
    instance: JourneyInstance,
    event: Event,
    variables: dict[str, Any],
    profile: dict[str, Any],
) -> None:
    """What an event does to a trip in progress: exit it, convert it, or end its wait_for."""
    journey = catalog.journey_of_version(session, instance.journey_version_id)
    if _exits(journey, event, variables):
        lifecycle.exit_instance(session, instance, f"exit_when: {event.name}")
    elif _reached_goal(journey, instance, event, variables):
        lifecycle.convert(session, instance, event, variables)
    else:
        step = journey.step(instance.cursor)
        if (
            isinstance(step, WaitForStep)
            and step.event == event.name
            and holds(step.when, variables, f"{journey.id} wait_for at {step.path}")
        ):
            session.execute(
                update(Timer)
                .where(
                    Timer.instance_id == instance.id,
                    Timer.step_path == step.path,
                    Timer.status == "pending",
                )
                .values(status="cancelled")
            )
            continue_at(session, instance, journey, journey.after(step.path), profile)


def _late_conversions(
    session: Session, profile_id: str, event: Event, variables: dict[str, Any]
) -> None:
    """A trip that already completed (the e-mail went out, nothing left to do) still converts
    when the goal event arrives within the goal's window."""
    with_goal = [
        journey.id
        for _, journey in catalog.current_journeys(session)
        if journey.goal is not None and journey.goal.event == event.name
    ]
    if not with_goal:
        return
    for instance in lifecycle.finished_unconverted(session, profile_id, with_goal):
        journey = catalog.journey_of_version(session, instance.journey_version_id)
        if (
            journey.goal is not None
            and journey.goal.within is not None
            and _reached_goal(journey, instance, event, variables)
        ):
            lifecycle.record_conversion(session, instance, event, variables)


def on_event(session: Session, event: Event, profile: dict[str, Any]) -> None:
    """Move the trips this event concerns, then start the journeys it triggers."""
    variables = {"event": event.payload, "profile": profile}
    live, unsent = lifecycle.concerned(session, profile["id"])
    for instance in live:
        _on_live_trip(session, instance, event, variables, profile)
    for instance in unsent:
        journey = catalog.journey_of_version(session, instance.journey_version_id)
        if _exits(journey, event, variables):
            lifecycle.exit_instance(session, instance, f"exit_when: {event.name}")
    _late_conversions(session, profile["id"], event, variables)

    for version_id, journey in catalog.current_journeys(session):
        if not journey.enabled or journey.trigger.segment or journey.trigger.event != event.name:
            continue
        if not holds(journey.trigger.when, variables, f"{journey.id} trigger"):
            continue
        if not lifecycle.may_enter(session, journey, profile["id"]):
            continue
        if _exit_already_seen(session, journey, profile["id"], event, variables):
            log.info("%s: not entered, exit event already recorded", journey.id)
            continue
        started = lifecycle.start(session, journey, version_id, profile["id"], event)
        if started is not None:
            advance(StepContext(session, started, journey, event.payload, profile))


def on_segment_changes(
    session: Session, changes: list[tuple[str, str]], event: Event, profile: dict[str, Any]
) -> None:
    """Start the journeys whose trigger is a segment the person just entered or left
    (`changes`: (segment id, enter | exit)). `event` is what the trip reads as its event: the
    one that flipped the membership, or the person's latest when a window's expiry did."""
    variables = {"event": event.payload, "profile": profile}
    for version_id, journey in catalog.current_journeys(session):
        trigger = journey.trigger
        if not journey.enabled or (trigger.segment, trigger.on) not in changes:
            continue
        if not holds(trigger.when, variables, f"{journey.id} trigger"):
            continue
        if not lifecycle.may_enter(session, journey, profile["id"]):
            continue
        started = lifecycle.start(session, journey, version_id, profile["id"], event)
        if started is not None:
            log.info("%s: entered on %s %s", journey.id, trigger.on, trigger.segment)
            advance(StepContext(session, started, journey, event.payload, profile))


def resume(
    session: Session, instance: JourneyInstance, timer_path: str, profile: dict[str, Any]
) -> None:
    """Continue a trip whose timer at `timer_path` fired: after a wait, or into the
    `on_timeout` steps of a wait_for."""
    journey = catalog.journey_of_version(session, instance.journey_version_id)
    step = journey.step(timer_path)
    if isinstance(step, WaitForStep) and step.on_timeout:
        target: str | None = step.on_timeout[0].path
    else:
        target = journey.after(timer_path)
    continue_at(session, instance, journey, target, profile)
