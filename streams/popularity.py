"""Trending items over recent event time: hourly buckets of interaction weight, decayed at read.

The buckets are what Redis stores (one sorted set per hour, ``ZINCRBY`` from every worker), so
popularity is shared across workers; the decay is applied when the buckets are merged into a
ranked list, so writes stay plain increments.

>>> buckets = {0: {"a": 10.0, "b": 2.0}, 3600: {"b": 6.0}}
>>> trending(buckets, now=7200.0, half_life_s=3600.0)
[('b', 7.0), ('a', 5.0)]

One sender's influence is bounded twice. A user adds to an item's popularity once: their first
interaction with it, at most ``USER_ITEM_CAP`` (a purchase's weight); repeating it adds nothing
(``trending_weight``), so a flood of one user moves an item by at most the cap. The worker knows
"first" from the user's seen items in Redis, kept ``state_ttl_s`` (30 days) after the user's last
interaction: a user idle that long adds again, when the 6-hour half-life has long decayed their
first addition. And a bucket
that starts after the reader's clock is not merged: an interaction dated 9999-12-31 cannot make
its item lead everyone's list (the workers also keep their clock within ``max_future_s`` of the
wall clock, see ``reader_clock``).

>>> trending({0: {"a": 3.0}, 253402300800: {"mine": 1e9}}, now=3600.0, half_life_s=3600.0)
[('a', 3.0)]
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from streams.windows import bucket_start

BUCKET_S = 3600
# Implicit kinds weighted by the intent they show; explicit ratings count as their value.
KIND_WEIGHTS = {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 5.0}
USER_ITEM_CAP = max(KIND_WEIGHTS.values())  # what one user can add to one item's popularity


def interaction_weight(kind: str, rating: float | None = None) -> float:
    """
    >>> interaction_weight("cart"), interaction_weight("rating", 4.5)
    (3.0, 4.5)
    """
    return float(rating) if kind == "rating" else KIND_WEIGHTS[kind]


def trending_weight(kind: str, rating: float | None, already_seen: bool) -> float:
    """What one interaction adds to its item's popularity: its weight (at most ``USER_ITEM_CAP``)
    when the user had not touched the item before, else nothing.

    >>> trending_weight("cart", None, False), trending_weight("purchase", None, True)
    (3.0, 0.0)
    >>> trending_weight("rating", 1e9, False)
    5.0
    """
    return 0.0 if already_seen else min(interaction_weight(kind, rating), USER_ITEM_CAP)


def reader_clock(watermark: float, wall_clock: float, tolerance_s: float) -> float:
    """The time trending is read at: the event-time watermark, but never further ahead of the wall
    clock than ``tolerance_s`` (a far-future event must not move every reader into its bucket).

    >>> reader_clock(253402300799.0, 1_700_000_000.0, 3600.0), reader_clock(0.0, 10.0, 5.0)
    (1700003600.0, 10.0)
    """
    return min(watermark or wall_clock, wall_clock + tolerance_s)


def popularity_bucket(ts: float) -> int:
    return bucket_start(ts, BUCKET_S)


def trending(buckets: Mapping[int, Mapping[str, float]], now: float, half_life_s: float,
             top: int = 1000) -> list[tuple[str, float]]:
    """Items ranked by weight decayed with ``half_life_s`` from the end of each bucket to ``now``;
    buckets starting after ``now`` are ignored."""
    scores: dict[str, float] = {}
    for start, items in buckets.items():
        if start > now:
            continue
        decay = 0.5 ** (max(0.0, now - (start + BUCKET_S)) / half_life_s)
        for item, weight in items.items():
            scores[item] = scores.get(item, 0.0) + weight * decay
    return heapq.nlargest(top, scores.items(), key=lambda kv: (kv[1], kv[0]))


def live_buckets(now: float, half_life_s: float, horizon_half_lives: float = 4.0) -> list[int]:
    """Bucket starts still worth reading: older ones weigh less than 1/16 after 4 half-lives.

    >>> live_buckets(10_000.0, 3600.0, 1.0)
    [3600, 7200]
    """
    first = popularity_bucket(now - half_life_s * horizon_half_lives)
    return list(range(first, popularity_bucket(now) + 1, BUCKET_S))
