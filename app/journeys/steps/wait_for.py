"""`wait_for: {event, when, timeout}` — park the trip until the person does something.

The timeout is an ordinary timer; the awaited event is matched by the runtime when it arrives
(`runtime.on_event`), which cancels the timer and moves the trip on.
"""

from __future__ import annotations

from app import clock
from app.journeys.definition import WaitForStep
from app.journeys.steps.context import Outcome, StepContext
from app.journeys.steps.timing import park


def run(ctx: StepContext, step: WaitForStep) -> Outcome:
    park(ctx, step.path, clock.now() + step.timeout)
    return Outcome.SUSPEND
