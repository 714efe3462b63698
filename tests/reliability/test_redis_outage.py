"""Redis killed and restarted mid-stream: every event still decided (degraded while it is down),
the worker neither crashes nor stalls, and decisions use Redis again once it is back."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agents.embedded import ManagedProcess, create_topics, start_redis
from schemas.settings import SecretStr, Settings, Topics

pytestmark = pytest.mark.integration
EVENTS = 600
SPAN_S = 24.0


async def produce(settings: Settings) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    now, started = time.time(), time.monotonic()
    try:
        for i in range(EVENTS):
            doc = {"event_id": f"r{i}", "ts": now - 900 + i, "user_id": f"u{i % 30}", "merchant_id": "m",
                   "amount": 10.0 + i % 90, "currency": "EUR", "country": "FR", "channel": "web"}
            await producer.send(settings.topics.transactions, json.dumps(doc).encode(), key=doc["user_id"].encode())
            await asyncio.sleep(max(0.0, (i + 1) * SPAN_S / EVENTS - (time.monotonic() - started)))
        await producer.flush()
    finally:
        await producer.stop()


async def outage(redis: list[ManagedProcess], port: int, tmp_path) -> None:
    await asyncio.sleep(SPAN_S * 0.3)
    redis[0].kill()
    await asyncio.sleep(SPAN_S * 0.3)
    redis[0] = start_redis(tmp_path, port=port)[0]  # back, empty: no persistence in this test


async def collect(settings: Settings) -> dict[str, dict]:
    consumer = AIOKafkaConsumer(settings.topics.fraud_decisions, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    decisions, deadline = {}, time.monotonic() + 90
    try:
        while len(decisions) < EVENTS and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    doc = json.loads(r.value)
                    decisions.setdefault(doc["event_id"], doc)
    finally:
        await consumer.stop()
    return decisions


def test_a_redis_outage_degrades_decisions_but_loses_none(settings: Settings, tmp_path) -> None:
    redis_proc, url = start_redis(tmp_path)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    settings = settings.replace(redis_url=SecretStr(url))
    asyncio.run(create_topics(settings.bootstrap_servers, [getattr(settings.topics, n)
                                                           for n in Topics.__dataclass_fields__], settings.partitions))
    worker = ManagedProcess("worker", [sys.executable, "-m", "agents", "worker", "--loglevel", "warning"],
                            env={**os.environ, **settings.to_env()}, log_dir=tmp_path)
    holder = [redis_proc]
    try:
        time.sleep(6)  # join the group before traffic

        async def run() -> dict[str, dict]:
            await asyncio.gather(produce(settings), outage(holder, port, tmp_path))
            return await collect(settings)

        decisions = asyncio.run(run())
        assert worker.alive()
    finally:
        worker.stop()
        holder[0].stop()
    ordered = [decisions.get(f"r{i}") for i in range(EVENTS)]
    assert all(ordered), f"missing: {[f'r{i}' for i, d in enumerate(ordered) if d is None][:5]}"
    degraded = [i for i, d in enumerate(ordered) if d["degraded"]]
    print(f"{len(degraded)} of {EVENTS} decided degraded, events {degraded[:1]}..{degraded[-1:]}")
    assert degraded  # the outage was felt
    assert not any(d["degraded"] for d in ordered[-50:])  # and it is over: Redis is used again
