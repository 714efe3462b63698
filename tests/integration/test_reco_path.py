"""The recommendation path end to end: an outside aiokafka client, the README's contracts only."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from waiting import wait_until_async

from agents.clients import redis_client
from agents.dev.probes import metric
from agents.stores.keys import RedisKeys
from schemas.settings import Settings

pytestmark = pytest.mark.integration


def interaction(n: int, user: str, item: str, kind: str, now: float) -> tuple[bytes, bytes]:
    doc = {"event_id": f"int-{n}", "ts": now - 600 + n * 0.01, "user_id": user, "item_id": item, "kind": kind}
    return user.encode(), json.dumps(doc).encode()


async def wait_until_seen(settings: Settings, user: str, count: int, timeout: float = 90.0) -> None:
    redis = redis_client(settings)
    key = RedisKeys.from_settings(settings).seen_items(user)
    try:
        deadline = time.monotonic() + timeout
        while await redis.scard(key) < count:
            assert time.monotonic() < deadline, f"worker did not record {user}'s interactions"
            await asyncio.sleep(0.2)
    finally:
        await redis.aclose()


def trending_read_after(settings: Settings, moment: float) -> bool:
    return metric(settings.web_port, "streamsense_trending_read_timestamp_seconds") > moment


async def scenario(settings: Settings) -> tuple[dict, list[dict]]:
    t, now = settings.topics, time.time()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    consumer = AIOKafkaConsumer(t.recommendations, t.dead_letters, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        n = 0
        for i in range(30):  # the crowd buys the hits: hit-1 most, hit-4 least
            bought = [f"hit-{j}" for j in range(1, 5) if i < 30 - 7 * (j - 1)] + [f"other-{i % 6}"]
            for item in bought:
                n += 1
                key, value = interaction(n, f"crowd-{i}", item, "purchase", now)
                await producer.send(t.interactions, value, key=key)
        for item in ("hit-1", "niche-1", "niche-2", "niche-3"):  # alice has her own taste too
            n += 1
            key, value = interaction(n, "alice", item, "view", now)
            await producer.send(t.interactions, value, key=key)
        await producer.send(t.interactions, b'{"event_id": "bad", "kind": "like"}', key=b"alice")
        await producer.flush()
        await wait_until_seen(settings, "alice", 4)
        await wait_until_seen(settings, "crowd-0", 5)
        await wait_until_seen(settings, "crowd-29", 2)
        recorded_at = time.time()  # every interaction is in Redis: a trending list read from now on holds them
        await wait_until_async(lambda: asyncio.to_thread(trending_read_after, settings, recorded_at), timeout=30,
                               what="a trending refresh after the last interaction")

        requests = [{"request_id": "r-alice", "user_id": "alice", "k": 3, "ts": now, "exclude": ["hit-2"]},
                    {"request_id": "r-zed", "user_id": "zed", "k": 2, "ts": now},
                    {"request_id": "r-zed", "user_id": "zed", "k": 2, "ts": now}]  # duplicate id
        for req in requests:
            await producer.send(t.reco_requests, json.dumps(req).encode(), key=req["user_id"].encode())
        await producer.flush()
        answers, dead, deadline = {}, [], time.monotonic() + 60
        while (len(answers) < 2 or len(dead) < 2) and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    doc = json.loads(r.value)
                    (dead.append(doc) if tp.topic == t.dead_letters else answers.__setitem__(doc["request_id"], doc))
        return answers, dead
    finally:
        await producer.stop()
        await consumer.stop()


def test_recommendations_exclude_seen_items_and_fall_back_to_popular(settings: Settings, worker) -> None:
    answers, dead = asyncio.run(scenario(settings))
    alice, zed = answers["r-alice"], answers["r-zed"]
    alice_items = [i["item_id"] for i in alice["items"]]
    assert len(alice_items) == 3
    assert not {"hit-1", "niche-1", "niche-2", "niche-3", "hit-2"} & set(alice_items)  # seen or excluded
    assert alice["strategy"] in ("personal", "explore")
    assert zed["strategy"] == "popular" and [i["item_id"] for i in zed["items"]] == ["hit-1", "hit-2"]
    assert sorted(d["stage"] for d in dead) == ["dedupe", "validate"]
