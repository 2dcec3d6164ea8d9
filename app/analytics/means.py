"""Amounts per person compared (revenue): the difference of two means with a normal interval.

Revenue per person is mostly zeros and a few orders, far from normal, but a mean over hundreds
of people is close enough to normal for a 95 % interval (the same minimum per arm guards it).
Unequal variances (Welch): a holdout's spread says nothing about an arm's."""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.analytics.proportions import Interval, z_for


@dataclass(frozen=True)
class Amounts:
    """Per-person amounts of one arm, as sums: people with no amount count as zero."""

    n: int
    total: float
    squares: float  # the sum of each person's amount squared

    @property
    def mean(self) -> float:
        return self.total / self.n

    @property
    def variance(self) -> float:
        """The sample variance (n − 1)."""
        if self.n < 2:
            return 0.0
        return max(self.squares - self.n * self.mean**2, 0.0) / (self.n - 1)


def difference_interval(arm: Amounts, base: Amounts, confidence: float = 0.95) -> Interval | None:
    """The interval of the arm's mean minus the base's; None while either has under 2 people."""
    if arm.n < 2 or base.n < 2:
        return None
    diff = arm.mean - base.mean
    spread = z_for(confidence) * math.sqrt(arm.variance / arm.n + base.variance / base.n)
    return Interval(diff - spread, diff + spread)


def welch_p_value(arm: Amounts, base: Amounts) -> float | None:
    """Two-sided p-value of the arm's mean differing from the base's (normal approximation,
    as the interval); None while either has under 2 people or neither varies."""
    if arm.n < 2 or base.n < 2:
        return None
    spread = math.sqrt(arm.variance / arm.n + base.variance / base.n)
    if spread == 0:
        return None
    return math.erfc(abs(arm.mean - base.mean) / spread / math.sqrt(2))
