"""Kill -9 a worker and start it again: it restores the newest checkpoint and scores as before."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis

from agents.commands.topics import create_topics
from agents.dev.embedded import ManagedProcess
from agents.stores.checkpoints import RedisCheckpoints
from schemas.settings import Settings

pytestmark = pytest.mark.integration


def start_worker(settings: Settings, log_dir: Path, name: str) -> ManagedProcess:
    return ManagedProcess(name, [sys.executable, "-m", "agents", "worker", "--loglevel", "info"],
                          env={**os.environ, **settings.to_env()}, log_dir=log_dir)


def tx(event_id: str, user: str, merchant: str, amount: float, ts: float) -> bytes:
    return json.dumps({"event_id": event_id, "ts": ts, "user_id": user, "merchant_id": merchant, "amount": amount,
                       "currency": "EUR", "country": "FR", "channel": "web", "device_id": f"d-{user}"}).encode()


async def send_and_score(settings: Settings, messages: list[tuple[str, bytes]], wanted: set[str],
                         consumer: AIOKafkaConsumer, timeout: float = 90.0) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for topic, value in messages:
            doc = json.loads(value)  # keyed as the contracts say: transactions by user, labels by event
            await producer.send(topic, value, key=(doc.get("user_id") or doc["event_id"]).encode())
        await producer.flush()
    finally:
        await producer.stop()
    scores, deadline = {}, time.monotonic() + timeout
    while not wanted <= set(scores) and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for r in records:
                doc = json.loads(r.value)
                scores[doc["event_id"]] = doc["score"]
    assert wanted <= set(scores), f"missing decisions: {sorted(wanted - set(scores))[:5]}"
    return scores


def probes(topic: str, round_: str, now: float) -> list[tuple[str, bytes]]:
    """Fresh users and merchants each round, same amounts and times: same features, so same scores
    exactly when the model is the same."""
    return [(topic, tx(f"{round_}-{i}", f"{round_}-u{i}", f"{round_}-m{i}", 3.0 + 97 * i, now - 600))
            for i in range(12)]


async def scenario(settings: Settings, tmp_path: Path) -> tuple[list[float], list[float], dict]:
    t, now = settings.topics, time.time()
    await create_topics(settings)
    consumer = AIOKafkaConsumer(t.fraud_decisions, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    worker = start_worker(settings, tmp_path, "worker-a")
    try:
        traffic = [(t.transactions, tx(f"t{i}", f"u{i % 9}", f"m{i % 4}", 5 + (i * 13) % 300, now - 1500 + i))
                   for i in range(200)]
        labels = [(t.fraud_labels, json.dumps({"event_id": f"t{i}", "is_fraud": i % 10 == 0, "ts": now}).encode())
                  for i in range(200)]
        await send_and_score(settings, traffic, {f"t{i}" for i in range(200)}, consumer)
        await send_and_score(settings, labels, set(), consumer, timeout=0)
        redis = Redis.from_url(settings.redis_url.get_secret_value())
        store = RedisCheckpoints.on_redis(redis, settings)
        deadline, last, stable_since = time.monotonic() + 60, None, time.monotonic()
        while time.monotonic() < deadline:  # wait for the checkpoint after the last label was learned
            headers = await store.headers("fraud")
            newest = headers[-1]["model_version"] if headers else None
            if newest != last:
                last, stable_since = newest, time.monotonic()
            elif newest and time.monotonic() - stable_since > 4:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # the worker follows the registry every second
        before = await send_and_score(settings, probes(t.transactions, "p1", now), {f"p1-{i}" for i in range(12)},
                                      consumer)
        worker.kill()  # kill -9: no chance to save anything more
        worker = start_worker(settings, tmp_path, "worker-b")
        after = await send_and_score(settings, probes(t.transactions, "p2", now), {f"p2-{i}" for i in range(12)},
                                     consumer)
        header = (await store.headers("fraud"))[-1]
        await redis.aclose()
        return [before[f"p1-{i}"] for i in range(12)], [after[f"p2-{i}"] for i in range(12)], header
    finally:
        worker.stop()
        await consumer.stop()


def test_a_killed_worker_restores_its_checkpoint_and_scores_the_same(settings: Settings, tmp_path) -> None:
    settings = settings.replace(checkpoint_interval_s=1.0)
    before, after, header = asyncio.run(scenario(settings, tmp_path))
    assert before == after
    learned = int(header["model_version"].split(".")[1])
    assert learned > 100 and header["offsets"]  # 20 chargebacks and the kept half of 180 confirmations
    restored = (tmp_path / "worker-b.log").read_text()
    assert "restored checkpoint fraud" in restored and f"model {header['model_version']}" in restored
