"""Kill -9 the worker at random points mid-stream, ten times: nothing missing, no second decision."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis

from agents.embedded import ManagedProcess, create_topics
from agents.redis_keys import RedisKeys
from schemas.settings import Settings, Topics
from streams.fraud_features import UserState
from verifier import Ledger, verify

pytestmark = pytest.mark.integration
CYCLES = 10
EVENTS = 2400
USERS = 60


def start(settings: Settings, tmp_path: Path, n: int) -> ManagedProcess:
    return ManagedProcess(f"worker-{n}", [sys.executable, "-m", "agents", "worker", "--loglevel", "warning"],
                          env={**os.environ, **settings.to_env()}, log_dir=tmp_path)


async def produce(settings: Settings, ledger: Ledger, stop_after: float) -> None:
    rng, now = random.Random(7), time.time()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        started = time.monotonic()
        for i in range(EVENTS):
            user = f"user-{rng.randrange(USERS)}"
            if rng.random() < 0.01:
                raw = ledger.add_malformed(b'{"event_id": "broken", "amount": "NaN"')
            else:
                event_id = f"k{i}" if rng.random() > 0.01 or i < 10 else f"k{i - 5}"  # a few duplicates
                payload = ledger.valid.get(event_id) or {
                    "event_id": event_id, "ts": now - 3000 + i, "user_id": user, "merchant_id": f"m{i % 11}",
                    "amount": round(rng.uniform(1, 300), 2), "currency": "EUR", "country": "FR", "channel": "web"}
                raw = ledger.add_valid(payload)
                user = payload["user_id"]
            await producer.send(settings.topics.transactions, raw, key=user.encode())
            await asyncio.sleep(max(0.0, (i + 1) * stop_after / EVENTS - (time.monotonic() - started)))
        await producer.flush()
    finally:
        await producer.stop()


async def killer(settings: Settings, tmp_path: Path, cycles: int) -> ManagedProcess:
    rng = random.Random(11)
    worker = start(settings, tmp_path, 0)
    for n in range(1, cycles + 1):
        await asyncio.sleep(rng.uniform(3.0, 9.0))
        worker.kill()
        worker = start(settings, tmp_path, n)
    return worker


async def collect(settings: Settings, expected: int, timeout: float = 180.0) -> tuple[list[dict], list[dict]]:
    t = settings.topics
    consumer = AIOKafkaConsumer(t.fraud_decisions, t.dead_letters, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    decisions, dead, idle_since = [], [], time.monotonic()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                target = dead if tp.topic == t.dead_letters else decisions
                target.extend(json.loads(r.value) for r in records)
            if batch:
                idle_since = time.monotonic()
            if len({d["event_id"] for d in decisions}) + len(dead) >= expected and time.monotonic() - idle_since > 5:
                break
    finally:
        await consumer.stop()
    return decisions, dead


async def user_history(settings: Settings, users: set[str]) -> dict[str, int]:
    redis, keys = Redis.from_url(settings.redis_url.get_secret_value()), RedisKeys.from_settings(settings)
    try:
        return {u: UserState.from_bytes(raw).count for u in users if (raw := await redis.get(keys.user(u)))}
    finally:
        await redis.aclose()


def test_ten_kill_minus_nine_cycles_lose_nothing_and_decide_once(settings: Settings, tmp_path) -> None:
    asyncio.run(create_topics(settings.bootstrap_servers, [getattr(settings.topics, n)
                                                           for n in Topics.__dataclass_fields__], settings.partitions))
    ledger = Ledger()

    async def run() -> ManagedProcess:
        worker, _ = await asyncio.gather(killer(settings, tmp_path, CYCLES), produce(settings, ledger, 75.0))
        return worker

    worker = asyncio.run(run())
    try:
        expected = len(ledger.valid) + ledger.malformed + ledger.duplicates
        decisions, dead = asyncio.run(collect(settings, expected))
        history = asyncio.run(user_history(settings, {p["user_id"] for p in ledger.valid.values()}))
    finally:
        worker.stop()
    report = verify(ledger, decisions, dead, history)
    print(f"valid {len(ledger.valid)}, malformed {ledger.malformed}, duplicates sent {ledger.duplicates}; "
          f"{report}")
    assert report.missing == [] and report.effective_duplicates == []
    assert report.order_violations == 0 and report.state_mismatches == []
    assert report.dead_letters_by_stage.get("validate") == ledger.malformed
    assert report.dead_letters_by_stage.get("dedupe", 0) == ledger.duplicates
