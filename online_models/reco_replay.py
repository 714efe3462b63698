"""Replay interactions through the recommendation engine in memory, prequentially.

For every interaction of a user with enough history, the personal ranking and the popularity
baseline are asked for their top-K *before* the model learns the interaction (items the user has
already seen are excluded from both); a hit is the interacted item being in the list.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from online_models.reco_engine import RecoEngine
from schemas.records import Interaction
from streams.popularity import interaction_weight, popularity_bucket, trending

TRENDING_REFRESH = 50  # events between trending recomputations (the worker refreshes every ~2 s)


@dataclass
class HitRates:
    k: int
    personal_hits: int = 0
    popular_hits: int = 0
    evaluated: int = 0

    @property
    def personal(self) -> float:
        return self.personal_hits / self.evaluated if self.evaluated else 0.0

    @property
    def popular(self) -> float:
        return self.popular_hits / self.evaluated if self.evaluated else 0.0


@dataclass
class RecoReplay:
    engine: RecoEngine
    half_life_s: float
    seen: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    buckets: dict[int, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    watermark: float = 0.0
    _trending: list[tuple[str, float]] = field(default_factory=list)
    _since_refresh: int = TRENDING_REFRESH

    def trending(self) -> list[tuple[str, float]]:
        if self._since_refresh >= TRENDING_REFRESH:
            self._trending = trending(self.buckets, self.watermark, self.half_life_s)
            self._since_refresh = 0
        return self._trending

    def evaluate(self, it: Interaction, rates: HitRates) -> None:
        """Score the interaction against both rankings before learning it."""
        seen = self.seen[it.user_id]
        if len(seen) < self.engine.settings.reco_min_history or not self.engine.recommender.knows(it.user_id):
            return
        pop = self.trending()
        strategy, personal = self.engine.rank(it.user_id, rates.k, seen, len(seen), pop)
        popular = [i for i, _ in pop if i not in seen][: rates.k]
        rates.evaluated += 1
        rates.personal_hits += it.item_id in {i for i, _ in personal}
        rates.popular_hits += it.item_id in popular

    def learn(self, it: Interaction) -> None:
        seen = self.seen[it.user_id]
        self.engine.learn(it, seen)
        seen.add(it.item_id)
        bucket = self.buckets[popularity_bucket(it.ts)]
        bucket[it.item_id] = bucket.get(it.item_id, 0.0) + interaction_weight(it.kind, it.rating)
        self.watermark = max(self.watermark, it.ts)
        self._since_refresh += 1
