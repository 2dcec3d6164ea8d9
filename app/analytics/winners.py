"""A split's `winner:` rule decided: which arm, if any, has won, and recording it once.

The figures are the experiment report's own (`experiments.analyse`): the same minimum per
arm, the same sample-ratio check, the same test (z-test for two arms, chi-squared for more).
A holdout is the yardstick, never a winner: sending nobody anything cannot be "rolled out".
Trips whose arm a winner gave are not counted (the repository leaves them out), so the
figures stay those of the random draw once the rule has fired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.analytics import experiments, means, proportions
from app.analytics.experiments import ArmCounts
from app.analytics.repository import split_counts
from app.db import dialect_insert
from app.journeys.definition import WinnerRule
from app.journeys.models import SplitWinner


@dataclass(frozen=True)
class Decision:
    arm: str
    p_value: float


def decide(arms: Sequence[ArmCounts], rule: WinnerRule) -> Decision | None:
    """The winning arm, or None while the test is undecided (or must not be trusted).

    The best arm must also beat every other arm on its own, the control included: sending
    everyone down one of two arms that do equally well would be a coin toss called a result."""
    experiment = experiments.analyse(arms, rule.min_per_arm)
    if min(arm.recipients for arm in arms) < rule.min_per_arm:
        return None
    if experiment.sample_ratio_mismatch:  # people were lost or moved: no figure is sound
        return None
    if rule.metric == "revenue":
        return _by_revenue(arms, rule.threshold)
    if experiment.p_value is None or experiment.p_value >= rule.threshold:
        return None
    best = max((arm for arm in arms if not arm.holdout), key=_rate)
    if all(_beats(best, other, rule.threshold) for other in arms if other is not best):
        return Decision(best.name, experiment.p_value)
    return None


def _rate(arm: ArmCounts) -> float:
    return arm.conversions / arm.recipients if arm.recipients else 0.0


def _beats(arm: ArmCounts, other: ArmCounts, threshold: float) -> bool:
    """`arm` converts better than `other`, by a z-test below `threshold`."""
    p = proportions.z_test(arm.conversions, arm.recipients, other.conversions, other.recipients)
    return p is not None and p < threshold and _rate(arm) > _rate(other)


def _amounts(arm: ArmCounts) -> means.Amounts:
    return means.Amounts(arm.recipients, arm.revenue, arm.revenue_squares)


def _by_revenue(arms: Sequence[ArmCounts], threshold: float) -> Decision | None:
    """The arm with the most revenue per person, if it beats every other arm by a Welch test.

    Each comparison's p-value is multiplied by their number (Bonferroni): picking the best of
    several arms and then testing it alone would find winners in noise."""
    best = max((arm for arm in arms if not arm.holdout), key=lambda a: _amounts(a).mean)
    rivals = [arm for arm in arms if arm is not best]
    worst = 0.0
    for rival in rivals:
        p = means.welch_p_value(_amounts(best), _amounts(rival))
        if p is None or _amounts(best).mean <= _amounts(rival).mean:
            return None
        worst = max(worst, min(1.0, p * len(rivals)))
    return Decision(best.name, worst) if worst < threshold else None


def decide_pending(session: Session) -> list[SplitWinner]:
    """Decide every current split whose `winner:` rule has not fired yet; the winners newly
    recorded. Two schedulers deciding at once record one winner: the second insert is
    ignored on the unique (version, split)."""
    decided = []
    now = clock.now()
    for split in split_counts(session, undecided_winners=True):
        if split.winner is None or (decision := decide(split.arms, split.winner)) is None:
            continue
        row = {
            "journey_version_id": split.version_id,
            "split_path": split.step,
            "arm": decision.arm,
            "metric": split.winner.metric,
            "p_value": decision.p_value,
            "decided_at": now,
        }
        stmt = dialect_insert(session)(SplitWinner).values(row).on_conflict_do_nothing()
        if session.execute(stmt.returning(SplitWinner.id)).first() is not None:
            decided.append(SplitWinner(**row))
    return decided


def winners(session: Session, version_ids: Sequence[int]) -> dict[tuple[int, str], SplitWinner]:
    """The recorded winners of these journey versions, by (version, split path)."""
    rows = session.scalars(
        select(SplitWinner).where(SplitWinner.journey_version_id.in_(version_ids))
    )
    return {(row.journey_version_id, row.split_path): row for row in rows}
