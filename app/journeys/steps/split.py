"""`split:` — weighted A/B/n arms; the arm is recorded on the trip (and its deliveries).

A person's arm is a hash of profile and journey version, not a random draw: re-running a
trip, replaying events or simulating it gives the same arm, and arms stay balanced."""

from __future__ import annotations

import hashlib

from app.journeys.definition import SplitArm, SplitStep
from app.journeys.steps.context import Goto, Outcome, StepContext


def choose(arms: tuple[SplitArm, ...], key: str) -> SplitArm:
    total = sum(arm.weight for arm in arms)
    point = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % total
    for arm in arms:
        if point < arm.weight:
            return arm
        point -= arm.weight
    raise AssertionError("weights cover the whole range")


def run(ctx: StepContext, step: SplitStep) -> Outcome | Goto:
    instance = ctx.instance
    arm = choose(step.arms, f"{instance.journey_version_id}:{instance.profile_id}:{step.path}")
    instance.arm = arm.name
    return Goto(arm.steps[0].path) if arm.steps else Outcome.NEXT
