"""Two workers, one recommender: each forwards the interactions it consumes to the one learner,
every answer names the version the learner published, and a worker started after both were
killed serves the newest checkpoint instead of an empty model."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from test_two_workers import start
from waiting import wait_until, wait_until_async

from agents.clients import redis_client
from agents.commands.topics import create_topics
from agents.dev.probes import ready
from agents.lifecycle import RECO_ROLE
from agents.stores.checkpoints import RedisCheckpoints
from online_models.reco_engine import RecoEngine
from schemas.records import Interaction
from schemas.settings import Settings

pytestmark = pytest.mark.integration
USERS = 24  # over the 4 partitions: both workers consume some


def interactions(now: float) -> list[Interaction]:
    return [Interaction(f"i-{u}-{n}", now - 600 + n, f"user-{u}", f"item-{(u * 3 + n) % 15}",
                        "purchase" if n % 2 else "view") for u in range(USERS) for n in range(5)]


def learned_by_one_model(settings: Settings, sent: list[Interaction]) -> str:
    """The version one recommender that learned every interaction names (the count of learned
    steps does not depend on the order)."""
    engine = RecoEngine.from_settings(settings)
    for it in sent:
        engine.learn(it, set())
    return engine.model_version


async def send(settings: Settings, sent: list[Interaction]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for it in sent:
            await producer.send(settings.topics.interactions, json.dumps(it.to_dict()).encode(),
                                key=it.user_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def published_reco_version(settings: Settings) -> str | None:
    redis = redis_client(settings)
    try:
        store = RedisCheckpoints.on_redis(redis, settings)
        latest = await store.latest(RECO_ROLE)
        if latest is None:
            return None
        return next(h["model_version"] for h in await store.headers(RECO_ROLE) if h.get("version") == latest)
    finally:
        await redis.aclose()


async def answers_name(settings: Settings, round_id: str, timeout: float = 60.0) -> set[str]:
    """Ask for every user's list; the versions the answers name (each worker answers its partitions)."""
    t = settings.topics
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    consumer = AIOKafkaConsumer(t.recommendations, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    try:
        for u in range(USERS):
            request = {"request_id": f"{round_id}-{u}", "user_id": f"user-{u}", "k": 5, "ts": time.time()}
            await producer.send(t.reco_requests, json.dumps(request).encode(), key=f"user-{u}".encode())
        await producer.flush()
        versions: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while len(versions) < USERS and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    doc = json.loads(r.value)
                    if doc["request_id"].startswith(f"{round_id}-"):
                        versions[doc["request_id"]] = doc["model_version"]
        assert len(versions) == USERS, f"{len(versions)} of {USERS} answered"
        return set(versions.values())
    finally:
        await producer.stop()
        await consumer.stop()


def test_two_workers_serve_one_recommender_and_a_restarted_worker_resumes_from_its_checkpoint(
        settings: Settings, tmp_path: Path) -> None:
    asyncio.run(create_topics(settings))
    sent = interactions(time.time())
    expected = learned_by_one_model(settings, sent)
    workers = [start(settings, name, tmp_path) for name in ("worker-a", "worker-b")]
    try:
        wait_until(lambda: all(ready(port) for _, port in workers), 120, "both workers ready")
        asyncio.run(send(settings, sent))
        asyncio.run(wait_until_async(lambda: _published_is(settings, expected), 90,
                                     f"the learner to publish recommender {expected}"))
        rounds = iter(range(100))
        # Followers load the checkpoint within a second; every answer then names the one version.
        wait_until(lambda: asyncio.run(answers_name(settings, f"r{next(rounds)}")) == {expected}, 60,
                   f"every answer, from both workers, to name {expected}")
    finally:
        for proc, _ in workers:
            proc.kill()
    # Killed (-9): nothing published at stop. A new worker restores the newest checkpoint.
    restarted = start(settings, "worker-c", tmp_path)
    try:
        wait_until(lambda: ready(restarted[1]), 120, "the restarted worker ready")
        assert asyncio.run(answers_name(settings, "after")) == {expected}
    finally:
        restarted[0].stop()


async def _published_is(settings: Settings, expected: str) -> bool:
    return await published_reco_version(settings) == expected
