"""Event-time window helpers: pure functions over small values, so state serialises compactly.

Windows are half-open on the left: an event at time ``t`` is inside the window ``(end - h, end]``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence


def bucket_start(ts: float, width: int) -> int:
    """Start of the fixed bucket of ``width`` seconds holding ``ts``.

    >>> bucket_start(7199.9, 3600), bucket_start(7200, 3600)
    (3600, 7200)
    """
    return int(ts // width) * width


def span(times: Sequence[float], end: float, horizon: float) -> tuple[int, int]:
    """Index range of the sorted ``times`` inside ``(end - horizon, end]``.

    >>> span([10.0, 20.0, 30.0, 40.0], end=30.0, horizon=15.0)
    (1, 3)
    """
    return bisect_right(times, end - horizon), bisect_right(times, end)


def welford(count: int, mean: float, m2: float, value: float) -> tuple[int, float, float]:
    """One step of Welford's running mean and variance.

    >>> state = (0, 0.0, 0.0)
    >>> for v in (10.0, 12.0, 14.0):
    ...     state = welford(*state, v)
    >>> state
    (3, 12.0, 8.0)
    """
    count += 1
    delta = value - mean
    mean += delta / count
    return count, mean, m2 + delta * (value - mean)


def z_score(value: float, count: int, mean: float, m2: float, *, std_floor: float = 1.0,
            clip: float = 10.0) -> float:
    """How many (floored) standard deviations ``value`` lies above the running mean; 0 with < 2 values.

    >>> z_score(20.0, 3, 12.0, 8.0), z_score(20.0, 1, 12.0, 0.0), z_score(1e6, 3, 12.0, 8.0)
    (4.0, 0.0, 10.0)
    """
    if count < 2:
        return 0.0
    std = max(math.sqrt(m2 / (count - 1)), std_floor)
    return max(-clip, min(clip, (value - mean) / std))


def bucketed_total(buckets: Mapping[int, float], end: float, horizon: float, width: int) -> float:
    """Sliding-window total over fixed buckets: whole buckets inside ``(end - horizon, end]`` plus the
    overlapping share of the oldest one (the usual approximation of sliding rate limiters).

    >>> buckets = {0: 10.0, 3600: 4.0}
    >>> bucketed_total(buckets, end=5400.0, horizon=3600.0, width=3600)  # half of bucket 0 + bucket 3600
    9.0
    """
    start = end - horizon
    total = 0.0
    for b_start, value in buckets.items():
        b_end = b_start + width
        if b_end <= start or b_start > end:
            continue
        overlap = (b_end - max(b_start, start)) / width if b_start < start else 1.0
        total += value * overlap
    return total


__all__ = ["bucket_start", "bucketed_total", "span", "welford", "z_score"]
