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
from streams.popularity import USER_ITEM_CAP, popularity_bucket, trending_weight

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


async def test_a_user_adds_to_an_item_once_while_their_seen_items_are_kept(redis_url: str) -> None:
    """The per-user cap on trending as the worker applies it: one addition per user and item while
    the user's seen set lives (its TTL, ``state_ttl_s``, renewed by each of their interactions); once
    it has expired the user adds again (by then their first addition has decayed away)."""
    settings = Settings(redis_url=SecretStr(redis_url), app_id=f"streamsense-r-{uuid.uuid4().hex[:6]}")
    redis = redis_client(Settings(redis_url=SecretStr(redis_url)))
    processor, keys = RecoProcessor.on_redis(redis, settings), RedisKeys.from_settings(settings)
    ts = time.time() - 60
    try:
        await processor.on_interactions([interaction(0, "mallory", "item-x", ts)])
        await processor.on_interactions([interaction(i, "mallory", "item-x", ts) for i in range(1, 50)])
        capped = await redis.zscore(keys.popularity(popularity_bucket(ts)), "item-x")
        ttl = await redis.ttl(keys.seen_items("mallory"))
        await redis.delete(keys.seen_items("mallory"))  # as its TTL would, after state_ttl_s without interactions
        await processor.on_interactions([interaction(50, "mallory", "item-x", ts)])
        again = await redis.zscore(keys.popularity(popularity_bucket(ts)), "item-x")
    finally:
        await redis.aclose()
    assert capped == USER_ITEM_CAP and settings.state_ttl_s - 60 < ttl <= settings.state_ttl_s
    assert again == 2 * USER_ITEM_CAP
