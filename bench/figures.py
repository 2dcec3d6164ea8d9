"""The arithmetic of the figures: percentiles, a sustained rate, a peak of requests in flight."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def sustained_rate(times: Sequence[float]) -> float:
    """Per second, over the middle 80 % of the moments given: the ramp-up of the first tenth and
    the stragglers of the last are left out, as they would be in a longer run."""
    ordered = sorted(times)
    first, last = len(ordered) // 10, len(ordered) - 1 - len(ordered) // 10
    if last <= first or ordered[last] <= ordered[first]:
        raise ValueError(f"too few moments for a rate: {len(ordered)}")
    return (last - first) / (ordered[last] - ordered[first])


def peak_in_flight(intervals: Sequence[tuple[float, float]]) -> int:
    """The most (start, end) intervals that overlap at one moment."""
    moments = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda moment: (moment[0], moment[1]),  # an end before a start at the same moment
    )
    current = peak = 0
    for _, step in moments:
        current += step
        peak = max(peak, current)
    return peak
