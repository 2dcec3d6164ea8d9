"""`wait: 1h` — park the trip on a durable timer; the scheduler resumes it when due."""

from __future__ import annotations

from app import clock
from app.journeys.definition import WaitStep
from app.journeys.steps.context import Outcome, StepContext
from app.journeys.steps.timing import park


def run(ctx: StepContext, step: WaitStep) -> Outcome:
    park(ctx, step.path, clock.now() + step.duration)
    return Outcome.SUSPEND
