"""The recommendation path's Redis writes (real Redis, no broker): an interaction's claim and its
effects are one atomic step."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from agents.clients import redis_client
from agents.messages import RawMessage
from agents.reco_processor import RecoProcessor
from agents.stores.keys import RedisKeys
from schemas.settings import SecretStr, Settings
from streams.popularity import popularity_bucket, trending_weight

pytestmark = pytest.mark.integration


def interaction(i: int, user: str, item: str, ts: float) -> RawMessage:
    doc = {"event_id": f"i{i}", "ts": ts, "user_id": user, "item_id": item, "kind": "purchase"}
    return RawMessage("interactions", 0, i, user.encode(), json.dumps(doc).encode())


async def test_a_crash_after_the_claim_neither_loses_nor_doubles_an_interactions_effects(redis_url: str) -> None:
    settings = Settings(redis_url=SecretStr(redis_url), app_id=f"streamsense-r-{uuid.uuid4().hex[:6]}")
    redis = redis_client(Settings(redis_url=SecretStr(redis_url)))
    processor, keys = RecoProcessor.on_redis(redis, settings), RedisKeys.from_settings(settings)
    ts = time.time() - 60
    batch = [interaction(i, "alice", f"item-{i}", ts) for i in range(3)]
    record_lists = processor.store.record_lists

    async def crash(lists) -> None:
        raise RuntimeError("the worker died here")  # after the claims, before anything else

    processor.store.record_lists = crash
    try:
        with pytest.raises(RuntimeError):
            await processor.on_interactions(batch)
        processor.store.record_lists = record_lists
        assert await processor.on_interactions(batch) == []  # the redelivery: recognised, no dead letter
        assert await processor.on_interactions(batch) == []  # and again
        seen = {m.decode() for m in await redis.smembers(keys.seen_items("alice"))}
        popular = await redis.zscore(keys.popularity(popularity_bucket(ts)), "item-0")
    finally:
        await redis.aclose()
    assert seen == {"item-0", "item-1", "item-2"}  # not lost (claimed before: effects already there)
    assert popular == trending_weight("purchase", None, already_seen=False)  # and counted once
