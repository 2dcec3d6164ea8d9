"""Conversion rates compared: intervals, tests and sample sizes for counts of successes.

Standard library only. Each method is the textbook one a statistics package implements, so an
independent implementation (statsmodels, scipy) gives the same numbers to 1e-6; the tests check
that. The methods were chosen to stay meaningful at the edges a marketer meets first: nobody
converted yet, everybody converted, arms of very different sizes.

- rate interval: Wilson score (Wald collapses to a width of zero at 0 % and 100 %);
- difference of rates: Newcombe's hybrid score interval, built from the two Wilson intervals;
- ratio of rates: Katz's log interval with 0.5 added to each count (defined with 0 conversions);
- two arms: two-proportion z-test with pooled variance; more arms: Pearson's chi-squared test of
  independence (the same test as z² for two arms);
- sample size: normal approximation on Cohen's h (the arcsine difference), two-sided, both
  tails counted in the power as statsmodels does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def z_for(confidence: float) -> float:
    """The two-sided normal quantile: 1.96 for a 95 % interval."""
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


def wilson(conversions: int, n: int, confidence: float = 0.95) -> Interval | None:
    """The rate's interval; None for an arm nobody has reached yet."""
    if n == 0:
        return None
    z = z_for(confidence)
    p = conversions / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    # Exactly 0 % and 100 % at the edges, where rounding would leave a trace such as 1e-19.
    low = 0.0 if conversions == 0 else (centre - spread) / scale
    high = 1.0 if conversions == n else (centre + spread) / scale
    return Interval(low, high)


def difference_interval(
    conversions: int, n: int, base_conversions: int, base_n: int, confidence: float = 0.95
) -> Interval | None:
    """Newcombe's interval for rate − base rate (Newcombe 1998, method 10)."""
    arm = wilson(conversions, n, confidence)
    base = wilson(base_conversions, base_n, confidence)
    if arm is None or base is None:
        return None
    p, q = conversions / n, base_conversions / base_n
    diff = p - q
    return Interval(
        diff - math.sqrt((p - arm.low) ** 2 + (base.high - q) ** 2),
        diff + math.sqrt((arm.high - p) ** 2 + (q - base.low) ** 2),
    )


def ratio_interval(
    conversions: int, n: int, base_conversions: int, base_n: int, confidence: float = 0.95
) -> Interval | None:
    """Katz's log interval for rate / base rate, every count raised by 0.5."""
    if n == 0 or base_n == 0:
        return None
    x1, n1 = conversions + 0.5, n + 0.5
    x2, n2 = base_conversions + 0.5, base_n + 0.5
    log_ratio = math.log((x1 / n1) / (x2 / n2))
    spread = z_for(confidence) * math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
    return Interval(math.exp(log_ratio - spread), math.exp(log_ratio + spread))


def z_test(conversions: int, n: int, base_conversions: int, base_n: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test; None while it is undefined
    (an empty arm, or nobody or everybody converted in both)."""
    if n == 0 or base_n == 0:
        return None
    pooled = (conversions + base_conversions) / (n + base_n)
    variance = pooled * (1 - pooled) * (1 / n + 1 / base_n)
    if variance <= 0:
        return None
    z = (conversions / n - base_conversions / base_n) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


def chi2_sf(x: float, dof: int) -> float:
    """P(X ≥ x) for a chi-squared variable: the closed forms for a whole number of degrees of
    freedom (an incomplete gamma function of integer or half-integer shape)."""
    if x <= 0:
        return 1.0
    half = x / 2
    if dof % 2 == 0:
        term = total = math.exp(-half)
        for i in range(1, dof // 2):
            term *= half / i
            total += term
        return min(total, 1.0)
    total = math.erfc(math.sqrt(half))
    term = math.sqrt(2 * x / math.pi) * math.exp(-half)
    for j in range(1, (dof + 1) // 2):
        total += term
        term *= x / (2 * j + 1)
    return min(total, 1.0)


def chi2_independence(conversions: Sequence[int], sizes: Sequence[int]) -> float | None:
    """p-value of Pearson's chi-squared test that every arm converts at the same rate (no
    continuity correction); None while it is undefined (an empty arm, or one outcome only)."""
    total = sum(sizes)
    converted = sum(conversions)
    if min(sizes) == 0 or converted in (0, total):
        return None
    statistic = 0.0
    for x, n in zip(conversions, sizes, strict=True):
        for observed, share in ((x, converted / total), (n - x, 1 - converted / total)):
            expected = n * share
            statistic += (observed - expected) ** 2 / expected
    return chi2_sf(statistic, len(sizes) - 1)


def goodness_of_fit(observed: Sequence[int], weights: Sequence[float]) -> float | None:
    """p-value of the chi-squared test that `observed` counts follow `weights`; None before
    anyone is counted."""
    total = sum(observed)
    if total == 0:
        return None
    scale = total / sum(weights)
    expected = [w * scale for w in weights]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return chi2_sf(statistic, len(observed) - 1)


def cohens_h(rate: float, base_rate: float) -> float:
    return 2 * math.asin(math.sqrt(rate)) - 2 * math.asin(math.sqrt(base_rate))


def sample_size(
    rate: float, base_rate: float, ratio: float = 1.0, alpha: float = 0.05, power: float = 0.8
) -> float | None:
    """People needed in the base arm to detect `rate` against `base_rate` with a two-sided test
    at `alpha` and the given power, the other arm holding `ratio` times as many. None when the
    rates are equal: no sample detects a difference of zero."""
    h = abs(cohens_h(rate, base_rate))
    if h == 0:
        return None
    crit = z_for(1 - alpha)
    shrink = 1 + 1 / ratio  # the variance of h's estimate is shrink / n_base

    def achieved(n: float) -> float:
        d = h * math.sqrt(n / shrink)
        return _NORMAL.cdf(d - crit) + _NORMAL.cdf(-d - crit)

    # The one-tailed closed form, then Newton on the exact two-tailed power (monotone in n).
    n = shrink * ((crit + _NORMAL.inv_cdf(power)) / h) ** 2
    for _ in range(50):
        d = h * math.sqrt(n / shrink)
        slope = (_NORMAL.pdf(d - crit) - _NORMAL.pdf(-d - crit)) * d / (2 * n)
        step = (achieved(n) - power) / slope
        n -= step
        if abs(step) < 1e-9 * n:
            break
    return n
