"""Answers to repeated identical requests, kept for a TTL and only while the model version they
came from still serves (a model that learned since may answer differently)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

MAX_ENTRIES = 10_000


class PredictionCache:
    """
    >>> now = [0.0]
    >>> cache = PredictionCache(ttl_s=5.0, clock=lambda: now[0])
    >>> cache.put(("u1", 10), "v1", b"answer")
    >>> cache.get(("u1", 10), "v1"), cache.get(("u1", 10), "v2")
    (b'answer', None)
    >>> cache.put(("u1", 10), "v1", b"answer"); now[0] = 6.0
    >>> cache.get(("u1", 10), "v1") is None
    True
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s, self.clock, self.max_entries = ttl_s, clock, max_entries
        self.entries: dict[Hashable, tuple[float, str, bytes]] = {}  # key -> (expires, version, answer)

    def get(self, key: Hashable, version: str) -> bytes | None:
        entry = self.entries.get(key)
        if entry is None or entry[0] <= self.clock() or entry[1] != version:
            self.entries.pop(key, None)
            return None
        return entry[2]

    def put(self, key: Hashable, version: str, answer: bytes) -> None:
        if self.ttl_s <= 0:
            return
        if len(self.entries) >= self.max_entries:  # bounded: drop the oldest insertion
            self.entries.pop(next(iter(self.entries)))
        self.entries[key] = (self.clock() + self.ttl_s, version, answer)
