"""`wait: {until: "09:00"}` — park the trip until the next 09:00 where the person lives.

Local wall-clock time, so a message planned for 09:00 arrives at 09:00 in summer and in
winter alike; a time skipped by a DST change resolves to the same offset as the day before.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app import clock
from app.journeys.definition import WaitUntilStep
from app.journeys.steps.context import Outcome, StepContext
from app.journeys.steps.timing import park
from app.settings import get_settings

log = logging.getLogger(__name__)


def timezone_of(profile: dict[str, object]) -> ZoneInfo:
    traits = profile.get("traits")
    name = traits.get("timezone") if isinstance(traits, dict) else None
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.info("profile %s: unknown timezone %r, using the default", profile.get("id"), name)
    return ZoneInfo(get_settings().default_timezone)


def next_occurrence(now: datetime, step: WaitUntilStep, zone: ZoneInfo) -> datetime:
    """The first `step.at` in `zone` strictly after `now`."""
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), step.at, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), step.at, tzinfo=zone)
    return candidate.astimezone(now.tzinfo)


def run(ctx: StepContext, step: WaitUntilStep) -> Outcome:
    park(ctx, step.path, next_occurrence(clock.now(), step, timezone_of(ctx.profile)))
    return Outcome.SUSPEND
