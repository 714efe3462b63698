"""The cached top-K lists: a user's list is re-ranked at most every ``reco_list_refresh_s``."""

from __future__ import annotations

import json

from agents.messages import RawMessage
from agents.reco_processor import RecoProcessor
from online_models.reco_engine import RecoEngine
from schemas.settings import Settings


class MemoryStore:
    """The RecoStore calls on_interactions makes, in memory; ``lists`` records every list written."""

    def __init__(self) -> None:
        self.lists: list[str] = []
        self.seen_items: dict[str, set[str]] = {}

    async def claim(self, kind, claims):
        return [None] * len(claims)

    async def seen(self, user_ids):
        return {u: set(self.seen_items.get(u, ())) for u in user_ids}

    async def claim_interactions(self, interactions):
        for _, _, effect in interactions:
            if effect is not None:
                self.seen_items.setdefault(effect[0], set()).add(effect[1])
        return [None] * len(interactions)

    async def record_lists(self, lists):
        self.lists.extend(lists)

    async def popularity(self, buckets):
        return {}


def interactions(start: int, users: list[str]) -> list[RawMessage]:
    return [RawMessage("interactions", 0, start + i, u.encode(), json.dumps(
        {"event_id": f"i{start + i}", "ts": 1_000.0 + start + i, "user_id": u, "item_id": f"item-{start + i}",
         "kind": "view"}).encode()) for i, u in enumerate(users)]


async def test_lists_are_reranked_at_most_once_per_interval() -> None:
    now = [0.0]
    settings = Settings(reco_list_refresh_s=5.0)
    store = MemoryStore()
    processor = RecoProcessor(settings, RecoEngine.from_settings(settings), store, clock=lambda: now[0])
    await processor.on_interactions(interactions(0, ["a", "b", "a"]))
    assert sorted(store.lists) == ["a", "b"]
    now[0] = 4.0
    await processor.on_interactions(interactions(10, ["a", "c"]))
    assert sorted(store.lists) == ["a", "b", "c"]  # a's list is 4 s old: not yet
    now[0] = 5.5
    await processor.on_interactions(interactions(20, ["a", "b", "c"]))
    assert sorted(store.lists) == ["a", "a", "b", "b", "c"]  # c was listed at 4 s
    assert len(store.seen_items["a"]) == 4  # every interaction was still recorded and learned


async def test_zero_interval_reranks_on_every_interaction() -> None:
    settings = Settings(reco_list_refresh_s=0.0)
    store = MemoryStore()
    processor = RecoProcessor(settings, RecoEngine.from_settings(settings), store, clock=lambda: 0.0)
    await processor.on_interactions(interactions(0, ["a"]))
    await processor.on_interactions(interactions(1, ["a"]))
    assert store.lists == ["a", "a"]
