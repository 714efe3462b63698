"""Seeded shopping-interaction traffic with latent tastes, for the recommendation path.

Users and items have latent taste vectors; a user picks an item with probability proportional to
``exp(taste . item * sharpness) * item popularity``, so there is a personal signal to learn and a
popularity signal to fall back on. New users and new items keep arriving. Before some
interactions the user asks for recommendations; the request carries (for the simulator's own
scoring only) the item the user interacts with next: the held-back interaction.

>>> sim = RecoTrafficSimulator(seed=3, start_ts=1_700_000_000.0, users=50, items=40)
>>> events = list(itertools.islice(sim.events(), 500))
>>> sorted({e.kind for e in events})
['interaction', 'reco_request']
>>> req = next(e for e in events if e.kind == "reco_request")
>>> after = next(e for e in events[events.index(req) + 1:] if e.key == req.key)
>>> after.payload["item_id"] == req.next_item
True
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from agents.sim.traffic import DAY, SimEvent, diurnal

KIND_MIX = (("view", 60), ("click", 20), ("cart", 10), ("purchase", 7), ("rating", 3))
DIMENSIONS = 8


@dataclass
class RecoTrafficSimulator:
    seed: int = 42
    start_ts: float = 1_700_000_000.0
    users: int = 300
    items: int = 400
    interactions_per_user_day: float = 12.0
    request_share: float = 0.15
    new_user_every_s: float = 600.0
    new_item_every_s: float = 1800.0
    sharpness: float = 4.0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._np = np.random.default_rng(self.seed)
        self._item_ids: list[str] = []
        self._item_vecs = np.zeros((0, DIMENSIONS))
        self._item_pop = np.zeros(0)
        self._user_ids: list[str] = []
        self._user_vecs: list[np.ndarray] = []
        self._activity: list[float] = []
        self._seen: list[set[int]] = []
        for _ in range(self.items):
            self._add_item()
        for _ in range(self.users):
            self._add_user()
        self._ids = itertools.count()

    def _add_item(self) -> None:
        self._item_ids.append(f"item-{len(self._item_ids):05d}")
        self._item_vecs = np.vstack([self._item_vecs, self._np.normal(0, 1, DIMENSIONS) / math.sqrt(DIMENSIONS)])
        self._item_pop = np.append(self._item_pop, self._np.lognormal(0, 1))

    def _add_user(self) -> None:
        self._user_ids.append(f"shopper-{len(self._user_ids):05d}")
        self._user_vecs.append(self._np.normal(0, 1, DIMENSIONS))
        self._activity.append(self._rng.gammavariate(2.0, 0.5))
        self._seen.append(set())

    def _choose(self, user: int) -> int:
        affinity = self._item_vecs @ self._user_vecs[user] * self.sharpness + np.log(self._item_pop)
        seen = self._seen[user]
        if seen and self._rng.random() < 0.1:
            return self._rng.choice(sorted(seen))  # a return visit
        if seen:
            affinity[list(seen)] = -np.inf
        weights = np.exp(affinity - affinity.max())
        return int(self._np.choice(len(weights), p=weights / weights.sum()))

    def _interaction(self, ts: float, user: int, item: int) -> SimEvent:
        kind = self._rng.choices([k for k, _ in KIND_MIX], [w for _, w in KIND_MIX])[0]
        payload = {"event_id": f"int-{self.seed}-{next(self._ids):08d}", "ts": round(ts, 3),
                   "user_id": self._user_ids[user], "item_id": self._item_ids[item], "kind": kind}
        if kind == "rating":
            fit = float(self._item_vecs[item] @ self._user_vecs[user])
            payload["rating"] = float(min(5, max(1, round(3 + 2 * math.tanh(fit)))))
        self._seen[user].add(item)
        return SimEvent("interaction", ts, self._user_ids[user], payload)

    def events(self) -> Iterator[SimEvent]:
        rng = self._rng
        now = self.start_ts
        next_user, next_item = now + self.new_user_every_s, now + self.new_item_every_s
        while True:
            rate = len(self._user_ids) * self.interactions_per_user_day / DAY / 0.55
            now += rng.expovariate(rate)
            while next_user <= now:
                self._add_user()
                next_user += self.new_user_every_s
            while next_item <= now:
                self._add_item()
                next_item += self.new_item_every_s
            if rng.random() > diurnal(now):
                continue
            user = rng.choices(range(len(self._user_ids)), self._activity)[0]
            item = self._choose(user)
            if rng.random() < self.request_share:
                yield SimEvent("reco_request", now, self._user_ids[user], {
                    "request_id": f"req-{self.seed}-{next(self._ids):08d}", "user_id": self._user_ids[user],
                    "k": 10, "ts": round(now, 3)}, next_item=self._item_ids[item])
            yield self._interaction(now, user, item)
