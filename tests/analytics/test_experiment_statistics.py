"""The experiment statistics against reference values computed independently, by statsmodels and
scipy, to 1e-6: intervals, p-values, the sample-ratio check and the sample size, at the edges a
marketer meets first (nobody converted, everybody converted, unequal arms, three arms and more).
Then the verdicts a marketer reads."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from app.analytics import means, proportions
from app.analytics.experiments import ArmCounts, analyse

TOLERANCE = 1e-6

# (conversions, people) of an arm and of its control.
PAIRS = [
    (0, 100, 5, 100),  # nobody converted in the arm
    (5, 100, 0, 100),  # nobody converted in the control
    (100, 100, 90, 100),  # everybody converted
    (30, 1000, 45, 1200),  # unequal arms
    (7, 13, 0, 29),  # small and unequal
    (480, 5000, 520, 5000),
    (1, 1, 0, 1),  # one person each
    (12_345, 250_000, 12_000, 250_000),  # a large broadcast
]


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """Arithmetic only: no database or broker state to reset."""
    yield


def close(value: float | None, reference: float) -> bool:
    return value is not None and math.isclose(value, reference, rel_tol=0, abs_tol=TOLERANCE)


@pytest.mark.parametrize(("x", "n"), [(0, 1), (0, 250), (250, 250), (1, 3), (37, 412)])
def test_wilson_interval_of_a_rate(x: int, n: int) -> None:
    low, high = proportion_confint(x, n, alpha=0.05, method="wilson")
    interval = proportions.wilson(x, n)
    assert interval is not None
    assert close(interval.low, low) and close(interval.high, high)
    assert 0 <= interval.low <= x / n <= interval.high <= 1


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), PAIRS)
def test_lift_intervals_and_z_test(x1: int, n1: int, x2: int, n2: int) -> None:
    low, high = confint_proportions_2indep(x1, n1, x2, n2, compare="diff", method="newcomb")
    lift = proportions.difference_interval(x1, n1, x2, n2)
    assert lift is not None and close(lift.low, low) and close(lift.high, high)

    low, high = confint_proportions_2indep(x1, n1, x2, n2, compare="ratio", method="log-adjusted")
    ratio = proportions.ratio_interval(x1, n1, x2, n2)
    assert ratio is not None and close(ratio.low, low) and close(ratio.high, high)

    _z, p = proportions_ztest([x1, x2], [n1, n2])
    assert close(proportions.z_test(x1, n1, x2, n2), p)
    # Two arms: the z-test and the chi-squared test without continuity correction agree.
    _chi2, p_chi2, _dof, _expected = stats.chi2_contingency(
        [[x1, n1 - x1], [x2, n2 - x2]], correction=False
    )
    assert close(proportions.chi2_independence([x1, x2], [n1, n2]), p_chi2)


def test_no_p_value_while_everyone_is_alike_or_an_arm_is_empty() -> None:
    assert proportions.z_test(0, 100, 0, 100) is None
    assert proportions.z_test(100, 100, 50, 50) is None
    assert proportions.z_test(3, 10, 0, 0) is None
    assert proportions.chi2_independence([0, 0, 0], [10, 20, 30]) is None
    assert proportions.chi2_independence([1, 2, 0], [10, 20, 0]) is None
    assert proportions.wilson(0, 0) is None
    assert proportions.difference_interval(1, 2, 0, 0) is None


@pytest.mark.parametrize(
    ("conversions", "sizes"),
    [
        ([30, 45, 60], [1000, 1200, 1000]),
        ([0, 3, 9], [200, 210, 190]),
        ([50, 50, 50, 50], [50, 60, 70, 80]),  # one arm at 100 %
        ([12, 15, 11, 30, 9], [400, 400, 400, 400, 400]),
        ([1, 0, 0, 2, 0, 1], [5, 6, 7, 5, 6, 7]),  # six arms, tiny
    ],
)
def test_chi_squared_for_three_arms_and_more(conversions: list[int], sizes: list[int]) -> None:
    table = [[x, n - x] for x, n in zip(conversions, sizes, strict=True)]
    _chi2, p, _dof, _expected = stats.chi2_contingency(table, correction=False)
    assert close(proportions.chi2_independence(conversions, sizes), p)


@pytest.mark.parametrize("dof", range(1, 27))
def test_chi_squared_tail_for_every_number_of_arms(dof: int) -> None:
    for x in (1e-6, 0.3, 1.0, dof, 3.0 * dof, 40.0, 400.0, 1e5):
        assert close(proportions.chi2_sf(x, dof), stats.chi2.sf(x, dof)), (dof, x)


@pytest.mark.parametrize(
    ("observed", "weights"),
    [
        ([5000, 5000], [50, 50]),
        ([5200, 4800], [50, 50]),
        ([4500, 4400, 1100], [45, 45, 10]),
        ([700, 300], [70, 30]),
        ([1, 0, 0], [20, 30, 50]),
        ([250_300, 249_700], [50, 50]),
    ],
)
def test_sample_ratio_check_against_the_weights(observed: list[int], weights: list[int]) -> None:
    expected = np.array(weights) / sum(weights) * sum(observed)
    _chi2, p = stats.chisquare(observed, expected)
    assert close(proportions.goodness_of_fit(observed, weights), p)


@pytest.mark.parametrize(
    ("rate", "base", "ratio"),
    [
        (0.12, 0.10, 1.0),
        (0.10, 0.12, 1.0),
        (0.05, 0.0, 1.0),  # from zero conversions
        (1.0, 0.9, 1.0),  # to everybody
        (0.11, 0.10, 4.5),  # a 45 % arm against a 10 % holdout
        (0.30, 0.20, 0.25),
    ],
)
def test_sample_needed_for_80_percent_power(rate: float, base: float, ratio: float) -> None:
    n = proportions.sample_size(rate, base, ratio)
    assert n is not None
    h = abs(proportion_effectsize(rate, base))
    power = NormalIndPower()
    # statsmodels' own solver stops at ~1e-7 relative; solve its power equation tightly instead.
    reference = optimize.brentq(
        lambda nobs: power.power(h, nobs, 0.05, ratio) - 0.8, 1e-3, 1e9, xtol=1e-10, rtol=1e-14
    )
    assert math.isclose(n, reference, rel_tol=TOLERANCE)
    assert close(power.power(h, n, 0.05, ratio), 0.8)


@pytest.mark.parametrize(
    ("arm_orders", "arm_people", "base_orders", "base_people"),
    [
        ([30.0, 45.5, 120.0], 50, [30.0], 20),
        ([19.99] * 40, 400, [19.99] * 30, 400),
        ([5.0, 500.0], 3, [], 10),  # nobody in the holdout bought
    ],
)
def test_revenue_added_per_person_against_a_holdout(
    arm_orders: list[float], arm_people: int, base_orders: list[float], base_people: int
) -> None:
    """Each person's revenue: their order, or zero."""
    arm = np.array(arm_orders + [0.0] * (arm_people - len(arm_orders)))
    base = np.array(base_orders + [0.0] * (base_people - len(base_orders)))
    low, high = CompareMeans(DescrStatsW(arm), DescrStatsW(base)).zconfint_diff(usevar="unequal")
    interval = means.difference_interval(
        means.Amounts(arm_people, float(arm.sum()), float((arm**2).sum())),
        means.Amounts(base_people, float(base.sum()), float((base**2).sum())),
    )
    assert interval is not None and close(interval.low, low) and close(interval.high, high)


def test_no_sample_detects_a_lift_of_zero() -> None:
    assert proportions.sample_size(0.1, 0.1) is None


def arms(*rows: tuple[str, int, int, int]) -> list[ArmCounts]:
    return [ArmCounts(n, w, r, c, n == "holdout") for n, w, r, c in rows]


def test_two_arms_with_a_winner() -> None:
    e = analyse(arms(("A", 50, 1000, 100), ("B", 50, 1000, 140)))
    assert e.test == "z-test" and e.control == "A" and e.significant
    assert e.verdict == "B converts better than A (p = 0.006)"
    a, b = e.arms
    assert a.control and a.lift is None and a.needed == 1030
    assert b.lift is not None and math.isclose(b.lift, 0.04)
    assert b.relative_lift is not None and math.isclose(b.relative_lift, 0.4)
    assert b.incremental_conversions is None  # the control is not a holdout
    assert not e.sample_ratio_mismatch


def test_no_difference_yet_says_how_many_more_people_are_needed() -> None:
    e = analyse(arms(("A", 50, 1000, 100), ("B", 50, 1000, 110)))
    assert not e.significant
    assert e.more_needed_per_arm == 13_745
    assert e.verdict == "no difference shown yet: about 14,000 more people per arm needed"


def test_nothing_is_called_below_the_minimum_per_arm() -> None:
    e = analyse(arms(("A", 50, 300, 10), ("B", 50, 310, 40)))
    assert e.significant  # a strong early difference...
    assert e.verdict == (  # ... is still not called
        "too early to call: every arm needs at least 500 people (the smallest has 300); "
        "about 200 more per arm needed"
    )
    assert analyse(arms(("A", 50, 300, 10), ("B", 50, 310, 40)), min_per_arm=300).verdict == (
        "B converts better than A (p < 0.001)"
    )


def test_a_holdout_is_the_control_and_shows_incremental_conversions_and_revenue() -> None:
    e = analyse(
        [
            ArmCounts("A", 45, 4500, 450, False, 450 * 30.0, 450 * 900.0),
            ArmCounts("B", 45, 4400, 520, False, 520 * 30.0, 520 * 900.0),
            ArmCounts("holdout", 10, 1000, 80, True, 80 * 30.0, 80 * 900.0),
        ]
    )
    assert e.test == "chi-squared" and e.control == "holdout"
    assert e.verdict == "the arms differ (p < 0.001): B converts best"
    a = e.arms[0]
    assert a.incremental_conversions is not None and math.isclose(a.incremental_conversions, 90)
    assert a.lift_interval is not None and a.incremental_interval is not None
    assert math.isclose(a.incremental_interval.low, a.lift_interval.low * 4500)
    # Every order is 30: the revenue added is the conversions added, times 30.
    assert a.revenue == 13_500 and a.revenue_per_person == 3
    assert a.incremental_revenue is not None and math.isclose(a.incremental_revenue, 90 * 30)
    assert a.incremental_revenue_interval is not None
    assert a.incremental_revenue_interval.low < 2700 < a.incremental_revenue_interval.high
    assert e.arms[2].incremental_revenue is None  # the holdout itself
    # The 45 % arms need 4.5 times the holdout's people for the same comparison.
    assert e.arms[2].needed is not None and a.needed is not None
    assert a.needed == pytest.approx(e.arms[2].needed * 4.5, abs=5)


def test_sample_ratio_mismatch_comes_before_any_winner() -> None:
    e = analyse(arms(("A", 50, 5200, 450), ("B", 50, 4100, 520)))
    assert e.significant and e.sample_ratio_mismatch
    assert e.verdict == (
        "sample ratio mismatch (p < 0.001): the arms hold 5,200 / 4,100 people where the "
        "weights say 50 / 50; find the cause before trusting these results"
    )
    assert not analyse(arms(("A", 50, 5050, 450), ("B", 50, 4950, 520))).sample_ratio_mismatch


@pytest.mark.parametrize(
    ("rows", "verdict"),
    [
        ([("A", 50, 0, 0), ("B", 50, 0, 0)], "nobody has reached the split yet"),
        ([("A", 50, 600, 0), ("B", 50, 600, 0)], "no difference shown yet: nobody has converted"),
        (
            [("A", 50, 600, 600), ("B", 50, 600, 600)],
            "no difference shown: everyone converted in every arm",
        ),
        (
            [("A", 50, 600, 60), ("B", 50, 600, 60)],
            "no difference shown yet: the arms convert at the same rate so far",
        ),
    ],
)
def test_verdicts_at_the_edges(rows: list[tuple[str, int, int, int]], verdict: str) -> None:
    assert analyse(arms(*rows)).verdict == verdict


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two arms"):
        analyse(arms(("A", 100, 10, 1)))
    with pytest.raises(ValueError, match="at least 1, not 0"):
        analyse(arms(("A", 50, 10, 1), ("B", 50, 10, 2)), min_per_arm=0)
