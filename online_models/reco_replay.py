"""Replay interactions through the recommendation engine in memory, prequentially.

For every interaction of a user with enough history, the personal ranking and the popularity
baseline are asked for their top-K *before* the model learns the interaction (items the user has
already seen are excluded from both); a hit is the interacted item being in the list.

``follower_every``: the deployment of several workers with one learner (agents.learner). Half
the users (by a hash of the id) are answered by a follower that serves a copy of the model, taken
at its first answer after every ``follower_every`` learned interactions (its checkpoint lag); the
rest by the learner's live model. 0: one worker, every answer from the live model.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field

from online_models.reco_engine import RecoEngine
from schemas.records import Interaction
from streams.popularity import popularity_bucket, trending, trending_weight

TRENDING_REFRESH = 50  # events between trending recomputations (the worker refreshes every ~2 s)


@dataclass
class RankingScores:
    """Hit-rate@K and NDCG@K of the personal ranking and of popularity, on the same events."""

    k: int
    evaluated: int = 0
    hits: dict[str, int] = field(default_factory=lambda: {"personal": 0, "popular": 0})
    ndcg: dict[str, float] = field(default_factory=lambda: {"personal": 0.0, "popular": 0.0})

    def update(self, strategy: str, ranked: list[str], item: str) -> None:
        if item in ranked:
            self.hits[strategy] += 1
            self.ndcg[strategy] += 1.0 / math.log2(ranked.index(item) + 2)

    def hit_rate(self, strategy: str) -> float:
        return self.hits[strategy] / self.evaluated if self.evaluated else 0.0

    def summary(self) -> dict:
        out: dict = {"ranking_events": self.evaluated}
        for s in ("personal", "popular"):
            out[f"hit_rate_at_{self.k}_{s}"] = self.hit_rate(s)
            out[f"ndcg_at_{self.k}_{s}"] = self.ndcg[s] / self.evaluated if self.evaluated else 0.0
        return out


@dataclass
class RecoReplay:
    engine: RecoEngine
    half_life_s: float
    seen: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    buckets: dict[int, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    watermark: float = 0.0
    _trending: list[tuple[str, float]] = field(default_factory=list)
    _since_refresh: int = TRENDING_REFRESH
    follower_every: int = 0
    _follower: RecoEngine | None = None
    _since_checkpoint: int = 0

    def serving(self, user_id: str) -> RecoEngine:
        """The engine that answers ``user_id``: the learner's, or the follower's checkpoint copy."""
        if not self.follower_every or hashlib.blake2b(user_id.encode(), digest_size=1).digest()[0] % 2 == 0:
            return self.engine
        if self._follower is None:
            self._follower = copy.deepcopy(self.engine)
        return self._follower

    def trending(self) -> list[tuple[str, float]]:
        if self._since_refresh >= TRENDING_REFRESH:
            self._trending = trending(self.buckets, self.watermark, self.half_life_s)
            self._since_refresh = 0
        return self._trending

    def evaluate(self, it: Interaction, scores: RankingScores) -> None:
        """Score the interaction against both rankings before learning it."""
        seen, engine = self.seen[it.user_id], self.serving(it.user_id)
        if len(seen) < engine.min_history or not engine.knows(it.user_id):
            return
        trending = self.trending()
        _, personal = engine.rank(it.user_id, scores.k, seen, len(seen), trending)
        scores.evaluated += 1
        scores.update("personal", [i for i, _ in personal], it.item_id)
        scores.update("popular", [i for i, _ in trending if i not in seen][: scores.k], it.item_id)

    def learn(self, it: Interaction) -> None:
        seen = self.seen[it.user_id]
        self.engine.learn(it, seen)
        bucket = self.buckets[popularity_bucket(it.ts)]
        bucket[it.item_id] = bucket.get(it.item_id, 0.0) + trending_weight(it.kind, it.rating, it.item_id in seen)
        seen.add(it.item_id)
        self.watermark = max(self.watermark, it.ts)
        self._since_refresh += 1
        self._since_checkpoint += 1
        if self.follower_every and self._since_checkpoint >= self.follower_every:
            self._follower, self._since_checkpoint = None, 0  # the next answer loads the new checkpoint
