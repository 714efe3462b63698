"""Canary user, merchant and device ids never reach Redis (keys or values), the worker's logs, or its
metrics, whether they come over Kafka or the HTTP API; the merchant, device and country tags kept
in user state are keyed with the pseudonym key (no unkeyed hash of a guess finds them)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.request

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from api_client import call
from redis.asyncio import Redis
from waiting import wait_until_async

from agents.api.auth import new_api_key
from agents.clients import redis_client
from agents.stores.checkpoints import RedisCheckpoints
from agents.stores.keys import RedisKeys
from schemas.settings import Settings
from streams.fraud_features import UserState

pytestmark = pytest.mark.integration
CANARY = "canary-9f1c2e"
MERCHANT, DEVICE = f"{CANARY}-shop", f"{CANARY}-dev"
TOKEN, API_KEY = new_api_key("privacy", ["score", "recommend"])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(api_keys=API_KEY, checkpoint_interval_s=1.0)


async def labels_checkpointed(settings: Settings) -> bool:
    """Whether the newest fraud checkpoint holds a learned label: the registry has what the traffic made."""
    redis = redis_client(settings)
    try:
        headers = await RedisCheckpoints.on_redis(redis, settings).headers("fraud")
    finally:
        await redis.aclose()
    return bool(headers) and int(headers[-1]["model_version"].split(".")[1]) >= 1


def api_calls(settings: Settings) -> list[int]:
    """A decision, a refused body and a recommendation for canary users over HTTP: their statuses."""
    now = time.time()
    calls = [("/v1/score", {"event_id": "api-c", "ts": now, "user_id": f"{CANARY}-api", "merchant_id": MERCHANT,
                            "amount": 5.0, "currency": "EUR", "country": "FR", "channel": "app"}),
             ("/v1/score", {"event_id": "api-bad", "user_id": f"{CANARY}-api", "amount": -1}),
             (f"/v1/recommendations/{CANARY}-1?k=3", None)]
    return [call(settings.web_port, "POST" if doc else "GET", path, TOKEN,
                 json.dumps(doc).encode() if doc else None)[0] for path, doc in calls]


async def traffic(settings: Settings) -> None:
    t, now = settings.topics, time.time()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    consumer = AIOKafkaConsumer(t.fraud_decisions, t.recommendations, t.dead_letters,
                                bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    try:
        for i in range(30):
            user = f"{CANARY}-{i % 3}"
            tx = {"event_id": f"c{i}", "ts": now - 100 + i, "user_id": user, "merchant_id": MERCHANT,
                  "amount": 12.0 + i, "currency": "EUR", "country": "FR", "channel": "web", "device_id": DEVICE}
            await producer.send(t.transactions, json.dumps(tx).encode(), key=user.encode())
            await producer.send(t.interactions, json.dumps({"event_id": f"ci{i}", "ts": now, "user_id": user,
                                                            "item_id": f"item{i % 5}", "kind": "view"}).encode(),
                                key=user.encode())
        await producer.send(t.transactions, json.dumps({"event_id": "bad", "user_id": CANARY}).encode())
        await producer.send(t.fraud_labels, json.dumps({"event_id": "c3", "is_fraud": True, "ts": now}).encode(),
                            key=b"c3")
        await producer.send(t.reco_requests, json.dumps({"request_id": "cq", "user_id": f"{CANARY}-1", "k": 3,
                                                         "ts": now}).encode(), key=f"{CANARY}-1".encode())
        await producer.flush()
        seen, deadline = 0, time.monotonic() + 60
        while seen < 32 and time.monotonic() < deadline:  # 30 decisions, 1 dead letter, 1 answer
            seen += sum(len(r) for r in (await consumer.getmany(timeout_ms=500)).values())
        assert seen >= 32
        await wait_until_async(lambda: labels_checkpointed(settings), timeout=60,
                               what="a checkpoint holding the canary's label")
    finally:
        await producer.stop()
        await consumer.stop()


async def user_state(settings: Settings, user_id: str) -> UserState:
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        return UserState.from_bytes(await redis.get(RedisKeys.from_settings(settings).user(user_id)))
    finally:
        await redis.aclose()


def unkeyed_hashes(value: str) -> set[str]:
    """What anyone can compute from a guess without the key (the tags used to be the first of these)."""
    raw = value.encode()
    return {hashlib.blake2b(raw, digest_size=4).hexdigest(), hashlib.sha256(raw).hexdigest()[:8],
            hashlib.md5(raw).hexdigest()[:8]}


async def redis_hits(settings: Settings) -> tuple[list[str], int]:
    """Keys whose name or content holds the canary, and how many keys were read."""
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    hits, scanned = [], 0
    try:
        async for key in redis.scan_iter(match=f"{settings.redis_key_prefix}*", count=500):
            scanned += 1
            kind = (await redis.type(key)).decode()
            if kind == "string":
                values = [await redis.get(key)]
            elif kind == "hash":
                values = [b" ".join(kv) for kv in (await redis.hgetall(key)).items()]
            elif kind == "set":
                values = list(await redis.smembers(key))
            else:  # zset
                values = [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
            hits += [key.decode()] if CANARY.encode() in key + b"".join(v or b"" for v in values) else []
    finally:
        await redis.aclose()
    return hits, scanned


def test_canary_ids_appear_in_no_redis_key_or_value_log_line_or_metric_and_tags_are_keyed(settings: Settings,
                                                                                          worker) -> None:
    asyncio.run(traffic(settings))
    assert api_calls(settings) == [200, 422, 200]
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=2) as response:
        metrics = response.read().decode()
    hits, scanned = asyncio.run(redis_hits(settings))
    assert hits == [] and scanned > 50  # users, merchants, decisions, snapshots, seen sets, lists, checkpoints
    assert CANARY not in worker.log_path.read_text()
    assert CANARY not in metrics and "streamsense_decisions_total" in metrics
    state, tag = asyncio.run(user_state(settings, f"{CANARY}-0")), settings.pseudonyms().tag
    assert (state.merchants, state.devices, state.countries) == ((tag(MERCHANT),), (tag(DEVICE),), (tag("FR"),))
    assert not {*state.merchants, *state.devices, *state.countries} & set().union(
        *map(unkeyed_hashes, (MERCHANT, DEVICE, "FR")))
