"""The counts an experiment is read from: per split arm, the trips put in it and the trips that
reached the journey's goal.

One query for every journey at once, on the current version of each: a new version of a file
reshuffles people between arms (docs/journeys.md), so it starts a new experiment rather than
mixing people who saw different variants under one arm name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.analytics.experiments import ArmCounts
from app.journeys import catalog
from app.journeys.definition import Journey, SplitArm, SplitStep, WinnerRule
from app.journeys.models import JourneyInstance, JourneyVersion, SplitWinner


class UnknownExperiment(LookupError):
    """No such journey, or a journey without a split: there is nothing to compare."""


@dataclass(frozen=True)
class SplitCounts:
    journey_id: str
    name: str
    version: int
    step: str  # the split's path in the journey
    goal: str | None  # the goal's event; None when the journey has none (nothing converts)
    currency: str | None  # the goal value's currency; None when the goal has no value
    arms: tuple[ArmCounts, ...]
    version_id: int = 0
    winner: WinnerRule | None = None  # the split's `winner:` rule


def _split(journey: Journey) -> SplitStep | None:
    """The journey's split: there is at most one (app/journeys/language/checks.py)."""
    return next((s for s in journey.all_steps() if isinstance(s, SplitStep)), None)


def _arm(arm: SplitArm, counts: tuple[int, int, float, float]) -> ArmCounts:
    trips, converted, revenue, squares = counts
    return ArmCounts(arm.name, arm.weight, trips, converted, arm.holdout, revenue, squares)


def split_counts(
    session: Session, journey_id: str | None = None, *, undecided_winners: bool = False
) -> list[SplitCounts]:
    """Every current journey with a split, or the one named (UnknownExperiment if it has none);
    with `undecided_winners`, only the splits with a `winner:` rule that has not fired.

    Trips whose arm a declared winner gave are left out: they were not drawn at random."""
    splits = [
        (version_id, journey, split)
        for version_id, journey in catalog.current_journeys(session)
        if (journey_id is None or journey.id == journey_id)
        and (split := _split(journey)) is not None
        and (split.winner is not None or not undecided_winners)
    ]
    if undecided_winners and splits:
        decided = {
            (version_id, path)
            for version_id, path in session.execute(
                select(SplitWinner.journey_version_id, SplitWinner.split_path).where(
                    SplitWinner.journey_version_id.in_([v for v, _j, _s in splits])
                )
            )
        }
        splits = [(v, j, s) for v, j, s in splits if (v, s.path) not in decided]
    if journey_id is not None and not splits:
        known = session.scalar(
            select(func.count()).where(
                JourneyVersion.journey_id == journey_id, JourneyVersion.is_current
            )
        )
        raise UnknownExperiment(
            f"journey {journey_id!r} has no split: there is nothing to compare"
            if known
            else f"no journey {journey_id!r} is loaded (see `carillon journeys list`)"
        )
    version_ids = [version_id for version_id, _journey, _split in splits]
    revenue = JourneyInstance.revenue
    counted: dict[tuple[int, str | None], tuple[int, int, float, float]] = {
        (version_id, arm): (trips, converted, float(total or 0), float(squares or 0))
        for version_id, arm, trips, converted, total, squares in session.execute(
            select(
                JourneyInstance.journey_version_id,
                JourneyInstance.arm,
                func.count(),
                func.count(JourneyInstance.converted_at),
                func.sum(revenue),
                func.sum(revenue * revenue),
            )
            .where(
                JourneyInstance.journey_version_id.in_(version_ids),
                JourneyInstance.arm.is_not(None),
                JourneyInstance.arm_by_winner.is_(False),
            )
            .group_by(JourneyInstance.journey_version_id, JourneyInstance.arm)
        )
    }
    versions = {
        version_id: number
        for version_id, number in session.execute(
            select(JourneyVersion.id, JourneyVersion.version).where(
                JourneyVersion.id.in_(version_ids)
            )
        )
    }
    return [
        SplitCounts(
            journey_id=journey.id,
            name=journey.name,
            version=versions[version_id],
            step=split.path,
            goal=journey.goal.event if journey.goal else None,
            currency=journey.goal.currency if journey.goal else None,
            arms=tuple(
                _arm(arm, counted.get((version_id, arm.name), (0, 0, 0.0, 0.0)))
                for arm in split.arms
            ),
            version_id=version_id,
            winner=split.winner,
        )
        for version_id, journey, split in splits
    ]
