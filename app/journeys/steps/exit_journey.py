"""`exit` — end the trip here."""

from __future__ import annotations

from app.journeys.definition import ExitStep
from app.journeys.steps.context import Outcome, StepContext


def run(ctx: StepContext, step: ExitStep) -> Outcome:
    return Outcome.EXIT
