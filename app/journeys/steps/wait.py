"""`wait: 1h` — park the trip on a durable timer; the scheduler resumes it when due."""

from __future__ import annotations

from app import clock
from app.journeys.definition import WaitStep
from app.journeys.models import Timer
from app.journeys.steps.context import Outcome, StepContext


def run(ctx: StepContext, step: WaitStep) -> Outcome:
    now = clock.now()
    ctx.session.add(
        Timer(
            instance_id=ctx.instance.id,
            step_path=step.path,
            due_at=now + step.duration,
            status="pending",
            created_at=now,
        )
    )
    return Outcome.SUSPEND
