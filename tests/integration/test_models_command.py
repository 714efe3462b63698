"""`streamsense models`: list, roll back, promote; workers follow and the move is published."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis
from waiting import wait_until_async

from agents.command_errors import EXIT_UNAVAILABLE
from agents.dev.embedded import free_port
from agents.dev.probes import metric
from agents.stores.checkpoints import RedisCheckpoints
from online_models.engine import FraudEngine
from schemas.records import Transaction
from schemas.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The worker learns from the probes; left to its 10 s interval it may publish a version of its own
    # between the listing and the rollback (seen under load), and the rollback would then start from it.
    return settings.replace(checkpoint_interval_s=3600.0)


def engine_after(n: int, settings: Settings) -> FraudEngine:
    engine = FraudEngine.from_settings(settings)
    for i in range(n):
        tx = Transaction(f"e{i}", 1_700_000_000.0 + i, f"u{i % 7}", "m", 10.0 + i % 50, "EUR", "FR", "web", "d")
        scored = engine.score(tx, None, {}, decided_at=0.0)
        engine.learn_unlabelled(scored.snapshot.features)
        engine.learn_label(scored.snapshot, i % 9 == 0, event_id=tx.event_id)
    return engine


def streamsense(settings: Settings, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "agents", *args], env={**os.environ, **settings.to_env()},
                          capture_output=True, text=True, timeout=60, check=True).stdout


async def decide_probe(settings: Settings, consumer: AIOKafkaConsumer, event_id: str, events: list) -> str:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    doc = {"event_id": event_id, "ts": time.time() - 60, "user_id": event_id, "merchant_id": "m", "amount": 9.0,
           "currency": "EUR", "country": "FR", "channel": "pos"}
    await producer.send_and_wait(settings.topics.transactions, json.dumps(doc).encode(), key=event_id.encode())
    await producer.stop()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for tp, records in (await consumer.getmany(timeout_ms=500)).items():
            for r in records:
                doc = json.loads(r.value)
                if tp.topic == settings.topics.model_events:
                    events.append(doc)
                elif doc["event_id"] == event_id:
                    return doc["model_version"]
    raise AssertionError(f"no decision for {event_id}")


def served(port: int) -> float | None:
    """The fraud checkpoint the worker serves (its metric, set once it is installed); None before
    its web server is up."""
    try:
        return metric(port, "streamsense_checkpoint_serving", role="fraud")
    except OSError:
        return None


async def serving(settings: Settings, version: int) -> None:
    await wait_until_async(lambda: served(settings.web_port) == version, 90,
                           f"the worker to serve fraud checkpoint v{version}")


async def scenario(settings: Settings) -> dict:
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    store = RedisCheckpoints.on_redis(redis, settings)
    versions = {}
    for n in (100, 300):
        engine = engine_after(n, settings)
        versions[await store.save("fraud", engine.models(), {"model_version": engine.model_version})] = \
            engine.model_version
    await redis.aclose()
    consumer = AIOKafkaConsumer(settings.topics.fraud_decisions, settings.topics.model_events,
                                bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    events: list[dict] = []
    try:
        await serving(settings, 2)  # the worker follows the registry every second
        serving_latest = await decide_probe(settings, consumer, "probe-1", events)
        listing = streamsense(settings, "models", "list")
        rollback = json.loads(streamsense(settings, "models", "rollback").strip().splitlines()[-1])
        await serving(settings, 1)
        serving_rolled_back = await decide_probe(settings, consumer, "probe-2", events)
        streamsense(settings, "models", "promote", "2")
        await serving(settings, 2)
        serving_promoted = await decide_probe(settings, consumer, "probe-3", events)
        for tp, records in (await consumer.getmany(timeout_ms=2000)).items():
            events += [json.loads(r.value) for r in records if tp.topic == settings.topics.model_events]
        return {"versions": versions, "listing": listing, "rollback": rollback, "events": events, "served": [
            serving_latest, serving_rolled_back, serving_promoted]}
    finally:
        await consumer.stop()


def test_models_list_rollback_and_promote(settings: Settings, worker) -> None:
    result = asyncio.run(scenario(settings))
    v1, v2 = result["versions"][1], result["versions"][2]
    assert "* v2" in result["listing"] and "verified" in result["listing"]
    assert result["rollback"]["event"] == "rolled_back" and result["rollback"]["version"] == 1
    assert result["rollback"]["previous_version"] == 2
    assert result["served"] == [v2, v1, v2]
    assert [(e["event"], e["version"]) for e in result["events"]] == [("rolled_back", 1), ("promoted", 2)]


def test_a_move_that_cannot_be_published_moves_nothing(settings: Settings) -> None:
    async def saved_and_latest() -> int | None:
        redis = Redis.from_url(settings.redis_url.get_secret_value())
        store = RedisCheckpoints.on_redis(redis, settings)
        try:
            if not await store.versions("fraud"):
                for n in (100, 300):
                    engine = engine_after(n, settings)
                    await store.save("fraud", engine.models(), {"model_version": engine.model_version})
            return await store.latest("fraud")
        finally:
            await redis.aclose()

    assert asyncio.run(saved_and_latest()) == 2
    unreachable = settings.replace(bootstrap_servers=f"127.0.0.1:{free_port()}")  # nothing listens there
    for args in (["rollback"], ["promote", "1"]):
        run = subprocess.run([sys.executable, "-m", "agents", "models", *args], capture_output=True, text=True,
                             env={**os.environ, **unreachable.to_env()}, timeout=60)
        assert run.returncode == EXIT_UNAVAILABLE and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.splitlines()[-1].endswith("nothing moved"), run.stderr  # after aiokafka's own log line
        assert asyncio.run(saved_and_latest()) == 2  # the pointer did not move
