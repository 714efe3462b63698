"""One sender's influence on trending is bounded: once per item, at most a purchase's weight, and
never from a bucket dated after the reader's clock (streams.popularity)."""

from __future__ import annotations

import json

from budget import examples
from hypothesis import given, settings, strategies as st

from agents.messages import RawMessage
from agents.reco_processor import RecoProcessor
from online_models.reco_engine import RecoEngine
from online_models.reco_replay import RecoReplay
from schemas.records import Interaction
from schemas.settings import Settings
from streams.popularity import KIND_WEIGHTS, USER_ITEM_CAP, trending
from tests.unit.test_reco_lists import MemoryStore

START = 1_700_000_000.0
kinds = st.sampled_from(sorted(KIND_WEIGHTS))
honest = st.lists(st.tuples(st.integers(0, 9), st.integers(0, 5), kinds), max_size=40)
# The flood at any times among the crowd's (seconds after START; two hourly buckets).
flood = st.lists(st.tuples(st.integers(0, 7200), st.integers(0, 5), kinds), min_size=1, max_size=200)


def trending_of(events: list[tuple[float, str, str, str]]) -> dict[str, float]:
    replay = RecoReplay(RecoEngine(), half_life_s=6 * 3600.0)
    for n, (ts, user, item, kind) in enumerate(sorted(events, key=lambda e: e[0])):
        replay.learn(Interaction(f"i{n}", ts, user, item, kind))
    return dict(trending(replay.buckets, START + 7200, replay.half_life_s))


@settings(max_examples=examples(60), deadline=None)
@given(honest, flood)
def test_a_single_users_flood_moves_each_item_at_most_by_the_cap(honest, flood) -> None:
    crowd = [(START + 100 * n, f"u{u}", f"item{i}", kind) for n, (u, i, kind) in enumerate(honest)]
    attack = [(START + t + 0.5, "attacker", f"item{i}", kind) for t, i, kind in flood]
    before, after = trending_of(crowd), trending_of(crowd + attack)
    for item in set(before) | set(after):
        assert after.get(item, 0.0) - before.get(item, 0.0) <= USER_ITEM_CAP + 1e-9


def interaction(n: int, user: str, item: str, ts: float, kind: str = "purchase") -> RawMessage:
    return RawMessage("interactions", 0, n, user.encode(), json.dumps(
        {"event_id": f"i{n}", "ts": ts, "user_id": user, "item_id": item, "kind": kind}).encode())


class PopularityStore(MemoryStore):
    """MemoryStore that also keeps the popularity buckets, as RecoStore does in Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.buckets: dict[int, dict[str, float]] = {}

    async def claim_interactions(self, interactions):
        for _, _, effect in interactions:
            if effect is not None and effect[3] > 0:  # as RecoStore's script: a repeat adds nothing
                _, item, ts, weight = effect
                bucket = self.buckets.setdefault(int(ts // 3600 * 3600), {})
                bucket[item] = bucket.get(item, 0.0) + weight
        return await super().claim_interactions(interactions)

    async def popularity(self, buckets):
        return {b: dict(self.buckets.get(b, {})) for b in buckets}


async def test_an_interaction_dated_far_ahead_does_not_lead_new_users_lists() -> None:
    now, store = START + 7200, PopularityStore()
    # A bucket dated 2100 is written by a worker whose input window let it through (as shipped, the
    # decoder refuses it); another worker, configured as shipped, reads trending from the same store.
    writer = RecoProcessor(Settings(reco_explore_share=0.0, max_past_s=1e10, max_future_s=1e12),
                           RecoEngine(explore_share=0.0), store, clock=lambda: now)
    crowd = [interaction(n, f"u{n % 20}", f"item{n % 4}", START + n) for n in range(60)]
    await writer.on_interactions(crowd + [interaction(99, "mallory", "mine", 4_102_444_800.0)])
    assert any("mine" in bucket for bucket in store.buckets.values())
    reader = RecoProcessor(Settings(reco_explore_share=0.0), RecoEngine(explore_share=0.0), store, clock=lambda: now)
    await reader.refresh_trending()
    assert reader.trending and "mine" not in dict(reader.trending)
