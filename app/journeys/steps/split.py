"""`split:` — weighted A/B/n arms; the arm is recorded on the trip (and its deliveries).

A person's arm is a hash of profile and journey version, not a random draw: re-running a
trip, replaying events or simulating it gives the same arm, and arms stay balanced. Once the
split's `winner:` rule has declared an arm (app/analytics/winners.py), new entrants all take
it, and their trip says so (`arm_by_winner`) so the experiment keeps counting drawn arms only."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.journeys.definition import SplitArm, SplitStep
from app.journeys.models import SplitWinner
from app.journeys.steps.context import Goto, Outcome, StepContext

_DECLARED = "split_winners"  # session.info key: (version id, split path) → winning arm or None


def choose(arms: tuple[SplitArm, ...], key: str) -> SplitArm:
    total = sum(arm.weight for arm in arms)
    point = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % total
    for arm in arms:
        if point < arm.weight:
            return arm
        point -= arm.weight
    raise AssertionError("weights cover the whole range")


def declared(session: Session, version_id: int, path: str) -> str | None:
    """The arm a winner rule declared for this split, read once per session (a batch of
    trips), not once per person."""
    cache: dict[tuple[int, str], str | None] = session.info.setdefault(_DECLARED, {})
    if (version_id, path) not in cache:
        cache[version_id, path] = session.scalar(
            select(SplitWinner.arm).where(
                SplitWinner.journey_version_id == version_id, SplitWinner.split_path == path
            )
        )
    return cache[version_id, path]


def run(ctx: StepContext, step: SplitStep) -> Outcome | Goto:
    instance = ctx.instance
    winner = None
    if step.winner is not None:
        name = declared(ctx.session, instance.journey_version_id, step.path)
        winner = next((arm for arm in step.arms if arm.name == name), None)
    arm = winner or choose(
        step.arms, f"{instance.journey_version_id}:{instance.profile_id}:{step.path}"
    )
    instance.arm = arm.name
    instance.arm_by_winner = winner is not None
    return Goto(arm.steps[0].path) if arm.steps else Outcome.NEXT
