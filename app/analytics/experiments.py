"""An A/B/n test read from its counts: did an arm beat the control, or does it only look better?

Pure: counts in, figures and one plain sentence out; no database, no clock. The control is the
holdout when the split has one (the people who got nothing: every other arm's lift is then what
its messages added), else the first arm. Nothing is declared before every arm holds
`min_per_arm` people: early results swing widely, and peeking at a test until it looks
significant finds "winners" that are noise. A sample-ratio mismatch (the arms' sizes far from
their weights) comes first of all: it means people were lost or moved between arms, and every
other figure is then suspect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from app.analytics import means, proportions
from app.analytics.proportions import Interval

ALPHA = 0.05  # significance threshold of the verdict
POWER = 0.8
MIN_PER_ARM = 500
SRM_ALPHA = 0.001  # a mismatch this unlikely by chance is a bug, not bad luck
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ArmCounts:
    name: str
    weight: int
    recipients: int  # trips that reached the split and were put in this arm
    conversions: int  # of those, trips that reached the journey's goal
    holdout: bool = False
    revenue: float = 0.0  # the goal's value summed over those conversions
    revenue_squares: float = 0.0  # each trip's value squared, summed: its spread


@dataclass(frozen=True)
class ArmResult:
    name: str
    weight: int
    holdout: bool
    control: bool
    recipients: int
    conversions: int
    rate: float | None
    rate_interval: Interval | None
    # Against the control (None on the control's own row): rate − control rate, and
    # rate / control rate − 1 (None while the control has no conversion).
    lift: float | None = None
    lift_interval: Interval | None = None
    relative_lift: float | None = None
    relative_lift_interval: Interval | None = None
    # Against a holdout control: the conversions this arm's messages added, lift × recipients.
    incremental_conversions: float | None = None
    incremental_interval: Interval | None = None
    revenue: float = 0.0
    revenue_per_person: float | None = None
    # Against a holdout control: the revenue the arm's messages added, with its interval.
    incremental_revenue: float | None = None
    incremental_revenue_interval: Interval | None = None
    # People this arm needs to detect its observed lift (the control: the largest lift) at
    # 80 % power, never fewer than the minimum per arm; None while no lift is observed.
    needed: int | None = None


@dataclass(frozen=True)
class Experiment:
    arms: tuple[ArmResult, ...]
    control: str
    test: str  # "z-test" (two arms) or "chi-squared" (more)
    p_value: float | None  # None while undefined: an empty arm, or one outcome for everybody
    significant: bool
    sample_ratio_p_value: float | None
    sample_ratio_mismatch: bool
    min_per_arm: int
    more_needed_per_arm: int | None
    verdict: str


def _control(arms: Sequence[ArmCounts]) -> ArmCounts:
    return next((arm for arm in arms if arm.holdout), arms[0])


def _scaled(interval: Interval | None, factor: int) -> Interval | None:
    return None if interval is None else Interval(interval.low * factor, interval.high * factor)


def _compare(
    arm: ArmCounts, control: ArmCounts, min_per_arm: int
) -> tuple[ArmResult, float | None]:
    """The arm's row, and how many people the control needs for this comparison."""
    rate = arm.conversions / arm.recipients if arm.recipients else None
    own = ArmResult(
        name=arm.name,
        weight=arm.weight,
        holdout=arm.holdout,
        control=arm is control,
        recipients=arm.recipients,
        conversions=arm.conversions,
        rate=rate,
        rate_interval=proportions.wilson(arm.conversions, arm.recipients, CONFIDENCE),
        revenue=arm.revenue,
        revenue_per_person=arm.revenue / arm.recipients if arm.recipients else None,
    )
    if arm is control:
        return own, None
    counts = (arm.conversions, arm.recipients, control.conversions, control.recipients)
    base = control.conversions / control.recipients if control.recipients else None
    lift = None if rate is None or base is None else rate - base
    lift_interval = proportions.difference_interval(*counts, CONFIDENCE)
    ratio_interval = proportions.ratio_interval(*counts, CONFIDENCE)
    relative = None if lift is None or not base else lift / base
    relative_interval = (
        None
        if relative is None or ratio_interval is None
        else Interval(ratio_interval.low - 1, ratio_interval.high - 1)
    )
    share = arm.weight / control.weight
    base_needed = None
    if rate is not None and base is not None:
        base_needed = proportions.sample_size(rate, base, share, ALPHA, POWER)
    by_holdout = control.holdout and lift is not None
    row = replace(
        own,
        lift=lift,
        lift_interval=lift_interval,
        relative_lift=relative,
        relative_lift_interval=relative_interval,
        incremental_conversions=lift * arm.recipients if by_holdout and lift is not None else None,
        incremental_interval=_scaled(lift_interval, arm.recipients) if by_holdout else None,
        **(_incremental_revenue(arm, control) if control.holdout else {}),
        needed=None if base_needed is None else max(min_per_arm, math.ceil(base_needed * share)),
    )
    return row, base_needed


def _incremental_revenue(arm: ArmCounts, holdout: ArmCounts) -> dict[str, Any]:
    """The revenue the arm's messages added over what its people would have spent anyway (the
    holdout's revenue per person), with its interval."""
    if not (arm.recipients and holdout.recipients):
        return {}
    per_person = means.difference_interval(_amounts(arm), _amounts(holdout), CONFIDENCE)
    added = arm.revenue / arm.recipients - holdout.revenue / holdout.recipients
    return {
        "incremental_revenue": added * arm.recipients,
        "incremental_revenue_interval": _scaled(per_person, arm.recipients),
    }


def _amounts(arm: ArmCounts) -> means.Amounts:
    return means.Amounts(arm.recipients, arm.revenue, arm.revenue_squares)


def _about(n: int) -> str:
    """1834 → "about 1,800": a power estimate is not precise to the person."""
    digits = max(len(str(n)) - 2, 0)
    return f"about {round(n, -digits):,}"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}".rstrip("0").rstrip(".")


def _label(arm: ArmResult) -> str:
    return "the holdout" if arm.holdout else arm.name


def _verdict(e: Experiment) -> str:
    arms = e.arms
    if not any(arm.recipients for arm in arms):
        return "nobody has reached the split yet"
    if e.sample_ratio_mismatch and e.sample_ratio_p_value is not None:
        sizes = " / ".join(f"{arm.recipients:,}" for arm in arms)
        weights = " / ".join(str(arm.weight) for arm in arms)
        return (
            f"sample ratio mismatch ({_p(e.sample_ratio_p_value)}): the arms hold {sizes} people "
            f"where the weights say {weights}; find the cause before trusting these results"
        )
    more = "" if e.more_needed_per_arm is None else f"; {_about(e.more_needed_per_arm)} more"
    smallest = min(arm.recipients for arm in arms)
    if smallest < e.min_per_arm:
        return (
            f"too early to call: every arm needs at least {e.min_per_arm:,} people "
            f"(the smallest has {smallest:,}){more} per arm needed"
        )
    if e.p_value is None:
        if all(arm.conversions == arm.recipients for arm in arms):
            return "no difference shown: everyone converted in every arm"
        return "no difference shown yet: nobody has converted"
    ranked = sorted(arms, key=lambda arm: arm.rate or 0.0, reverse=True)
    if e.significant and len(arms) == 2:
        return f"{_label(ranked[0])} converts better than {_label(ranked[1])} ({_p(e.p_value)})"
    if e.significant:
        return f"the arms differ ({_p(e.p_value)}): {_label(ranked[0])} converts best"
    if e.more_needed_per_arm is None:
        return "no difference shown yet: the arms convert at the same rate so far"
    if e.more_needed_per_arm == 0:
        return f"no difference shown ({_p(e.p_value)})"
    return f"no difference shown yet: {_about(e.more_needed_per_arm)} more people per arm needed"


def analyse(arms: Sequence[ArmCounts], min_per_arm: int = MIN_PER_ARM) -> Experiment:
    """The figures of a split with at least two arms."""
    if len(arms) < 2:
        raise ValueError("an experiment needs at least two arms")
    if min_per_arm < 1:
        raise ValueError(f"the minimum per arm must be at least 1, not {min_per_arm}")
    control = _control(arms)
    compared = [_compare(arm, control, min_per_arm) for arm in arms]
    base_needs = [need for _row, need in compared if need is not None]
    rows = [
        replace(row, needed=max(min_per_arm, math.ceil(max(base_needs))))
        if row.control and base_needs
        else row
        for row, _need in compared
    ]
    more = None
    if base_needs or min(arm.recipients for arm in arms) < min_per_arm:
        # An arm without an observed lift still needs the minimum.
        more = max(0, *((row.needed or min_per_arm) - row.recipients for row in rows))
    if len(arms) == 2:
        other = arms[1] if arms[0] is control else arms[0]
        test = "z-test"
        p = proportions.z_test(
            other.conversions, other.recipients, control.conversions, control.recipients
        )
    else:
        test = "chi-squared"
        p = proportions.chi2_independence(
            [arm.conversions for arm in arms], [arm.recipients for arm in arms]
        )
    srm = proportions.goodness_of_fit([arm.recipients for arm in arms], [a.weight for a in arms])
    experiment = Experiment(
        arms=tuple(rows),
        control=control.name,
        test=test,
        p_value=p,
        significant=p is not None and p < ALPHA,
        sample_ratio_p_value=srm,
        sample_ratio_mismatch=srm is not None and srm < SRM_ALPHA,
        min_per_arm=min_per_arm,
        more_needed_per_arm=more,
        verdict="",
    )
    return replace(experiment, verdict=_verdict(experiment))
