"""A restored learner resumes right after its checkpoint's learn-topic offsets: an example that the
killed worker learned and committed but never published is learned again, none is learned twice."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from scenario import create_all_topics, first_decisions, start

from agents.dev.embedded import free_port
from agents.dev.probes import group_offsets, metric
from agents.stores.checkpoints import RedisCheckpoints
from schemas.settings import Settings

pytestmark = pytest.mark.integration


async def send(settings: Settings, prefix: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for i in range(n):  # one user each: what the anomaly model learns is not capped per user
            doc = {"event_id": f"{prefix}{i}", "ts": time.time() - 60, "user_id": f"{prefix}-u{i}", "merchant_id": "m",
                   "amount": 12.5, "currency": "EUR", "country": "FR", "channel": "web"}
            await producer.send(settings.topics.transactions, json.dumps(doc).encode(), key=doc["user_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()
    assert len(await first_decisions(settings, n, prefix)) == n


def wait_until_learned_and_committed(settings: Settings, port: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ((end, committed),) = asyncio.run(group_offsets(settings.bootstrap_servers, settings.app_id,
                                                         settings.learn_topic)).values()
        if committed == end and metric(port, "streamsense_learn_position", partition="0") == end - 1:
            return end
        time.sleep(0.5)
    raise AssertionError(f"learn topic not learned through and committed: end {end}, committed {committed}")


async def newest_header(settings: Settings) -> dict:
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        return (await RedisCheckpoints.on_redis(redis, settings).headers("fraud"))[-1]
    finally:
        await redis.aclose()


def examples_seen(header: dict) -> int:
    """The anomaly model learns every decided event once: the last number of the model version."""
    return int(header["model_version"].rsplit(".", 1)[1])


def test_a_restored_learner_learns_every_example_once(settings: Settings, tmp_path) -> None:
    settings = settings.replace(checkpoint_interval_s=3600.0)  # published only on a clean stop
    create_all_topics(settings)
    port = free_port()
    worker = start(settings, tmp_path, "worker-a", port)
    try:
        asyncio.run(send(settings, "a", 60))
        first_end = wait_until_learned_and_committed(settings, port)
        worker.stop()  # SIGTERM: publishes v1, stamped with its position
        v1 = asyncio.run(newest_header(settings))
        assert examples_seen(v1) == 60 and v1["offsets"] == {f"{settings.learn_topic}/0": first_end - 1}

        worker = start(settings, tmp_path, "worker-b", port)
        asyncio.run(send(settings, "b", 40))
        wait_until_learned_and_committed(settings, port)  # learned and committed, never published
        worker.kill()

        worker = start(settings, tmp_path, "worker-c", port)
        asyncio.run(send(settings, "c", 10))  # the next example shows it where it stands
        end = wait_until_learned_and_committed(settings, port)
        worker.stop()
        newest = asyncio.run(newest_header(settings))
    finally:
        worker.stop()
    assert newest["version"] == 2 and newest["offsets"] == {f"{settings.learn_topic}/0": end - 1}
    assert examples_seen(newest) == 110  # 60 + 40 + 10: b's 40 learned again, not lost; none twice
    assert "reading again from" in (tmp_path / "worker-c.log").read_text()
