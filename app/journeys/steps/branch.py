"""`branch:` — the first arm whose condition holds runs; `else` catches the rest."""

from __future__ import annotations

from app.journeys.conditions import holds
from app.journeys.definition import BranchStep
from app.journeys.steps.context import Goto, Outcome, StepContext


def run(ctx: StepContext, step: BranchStep) -> Outcome | Goto:
    for index, arm in enumerate(step.arms):
        if holds(arm.when, ctx.variables, f"{ctx.journey.id} step {step.path} arm {index}"):
            return Goto(arm.steps[0].path) if arm.steps else Outcome.NEXT
    return Outcome.NEXT
