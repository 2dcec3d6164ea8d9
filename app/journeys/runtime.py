"""The step runtime: what an event does to journeys, and how a trip moves from step to step.

A trip advances inside the caller's transaction until a step suspends it (a wait) or it ends,
so a step's state change and the outbox rows it writes commit together or not at all.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.events.models import Event
from app.journeys import catalog, lifecycle
from app.journeys.conditions import Condition, ConditionEvalError
from app.journeys.definition import Journey
from app.journeys.models import ACTIVE, JourneyInstance
from app.journeys.steps import RUNNERS, Outcome, StepContext

log = logging.getLogger(__name__)


def matches(condition: Condition | None, variables: dict[str, Any], what: str) -> bool:
    """A condition that cannot be evaluated (say, a missing property) does not match."""
    if condition is None:
        return True
    try:
        return condition.evaluate(variables)
    except ConditionEvalError as exc:
        log.info("%s: condition %r not met: %s", what, condition.source, exc)
        return False


def next_path(journey: Journey, path: str) -> str | None:
    paths = [step.path for step in journey.steps]
    index = paths.index(path) + 1
    return paths[index] if index < len(paths) else None


def advance(ctx: StepContext) -> None:
    instance, journey = ctx.instance, ctx.journey
    steps = {step.path: step for step in journey.steps}
    while instance.status == ACTIVE:
        step = steps[instance.cursor]
        outcome = RUNNERS[type(step)](ctx, step)
        if outcome is Outcome.SUSPEND:
            return
        following = next_path(journey, step.path)
        if outcome is Outcome.EXIT or following is None:
            lifecycle.finish(instance, lifecycle.COMPLETED, f"reached step {step.path}")
            return
        instance.cursor = following


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
        matches(exit_when.when, {**variables, "event": e.payload}, f"{journey.id} exit_when")
        for e in later
    )


def on_event(session: Session, event: Event, profile: dict[str, Any]) -> None:
    """Exit the trips this event ends, then start the journeys it triggers."""
    variables = {"event": event.payload, "profile": profile}
    for instance in lifecycle.live_instances(session, profile["id"]):
        journey = catalog.journey_of_version(session, instance.journey_version_id)
        exit_when = journey.exit_when
        if (
            exit_when is not None
            and exit_when.event == event.name
            and matches(exit_when.when, variables, f"{journey.id} exit_when")
        ):
            lifecycle.exit_instance(session, instance, f"exit_when: {event.name}")

    for version_id, journey in catalog.current_journeys(session):
        if not journey.enabled or journey.trigger.event != event.name:
            continue
        if not matches(journey.trigger.when, variables, f"{journey.id} trigger"):
            continue
        if not lifecycle.may_enter(session, journey, profile["id"]):
            continue
        if _exit_already_seen(session, journey, profile["id"], event, variables):
            log.info("%s: not entered, exit event already recorded", journey.id)
            continue
        started = lifecycle.start(session, journey, version_id, profile["id"], event)
        if started is not None:
            advance(StepContext(session, started, journey, event.payload, profile))


def resume(
    session: Session, instance: JourneyInstance, after_path: str, profile: dict[str, Any]
) -> None:
    """Continue a trip after the step at `after_path` (a wait whose timer fired)."""
    journey = catalog.journey_of_version(session, instance.journey_version_id)
    following = next_path(journey, after_path)
    if following is None:
        lifecycle.finish(instance, lifecycle.COMPLETED, f"reached step {after_path}")
        return
    instance.cursor = following
    trigger = session.get(Event, instance.trigger_event_id)
    assert trigger is not None
    advance(StepContext(session, instance, journey, trigger.payload, profile))
