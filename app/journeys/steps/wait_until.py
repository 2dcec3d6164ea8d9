"""`wait: {until: "09:00"}` — park the trip until the next 09:00 where the person lives.

Local wall-clock time, so a message planned for 09:00 arrives at 09:00 in summer and in
winter alike; a time skipped by a DST change resolves to the same offset as the day before.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from app import clock
from app.journeys.definition import WaitUntilStep
from app.journeys.steps.context import Outcome, StepContext
from app.journeys.steps.timing import park
from app.profiles.timezone import timezone_of


def _zone(profile: dict[str, object]) -> ZoneInfo:
    traits = profile.get("traits")
    return timezone_of(str(profile.get("id")), traits if isinstance(traits, dict) else {})


def next_occurrence(now: datetime, step: WaitUntilStep, zone: ZoneInfo) -> datetime:
    """The first `step.at` in `zone` strictly after `now`."""
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), step.at, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), step.at, tzinfo=zone)
    return candidate.astimezone(now.tzinfo)


def run(ctx: StepContext, step: WaitUntilStep) -> Outcome:
    park(ctx, step.path, next_occurrence(clock.now(), step, _zone(ctx.profile)))
    return Outcome.SUSPEND
