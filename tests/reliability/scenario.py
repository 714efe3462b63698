"""What the fault scenarios share: workers started by pid, a ledgered stream of transactions
(with malformed ones and duplicated event ids), the outputs read back, the stored user state."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from verifier import Ledger, Report, verify

from agents.clients import redis_client
from agents.commands.topics import create_topics
from agents.dev.embedded import ManagedProcess
from agents.stores.keys import RedisKeys
from schemas.settings import Settings
from streams.fraud_features import UserState

USERS = 60


def create_all_topics(settings: Settings) -> None:
    asyncio.run(create_topics(settings))


def start(settings: Settings, tmp_path: Path, name: str, web_port: int | None = None,
          env: dict[str, str] | None = None) -> ManagedProcess:
    """A worker; give each of several workers at once its own ``web_port`` (they share the data dir name).
    ``env``: more environment (agents.faults reads its variable from there)."""
    if web_port is not None:
        settings = settings.replace(web_port=web_port, data_dir=str(tmp_path / f"{name}-data"))
    return ManagedProcess(name, [sys.executable, "-m", "agents", "worker", "--loglevel", "warning"],
                          env={**os.environ, **settings.to_env(), **(env or {})}, log_dir=tmp_path)


async def produce(settings: Settings, ledger: Ledger, events: int, span_s: float, *, repeats: bool = True,
                  label_every: int = 0) -> None:
    """``events`` transactions over ``span_s`` seconds: 1 % malformed, 1 % repeating an earlier
    event_id (none with ``repeats=False``); with ``label_every``, a label for every such
    transaction, sent just after it."""
    rng, now = random.Random(7), time.time()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        started = time.monotonic()
        for i in range(events):
            user = f"user-{rng.randrange(USERS)}"
            if rng.random() < 0.01:
                raw = ledger.add_malformed(b'{"event_id": "broken", "amount": "NaN"')
            else:
                repeat = repeats and rng.random() <= 0.01 and i >= 10
                event_id = f"k{i - 5}" if repeat else f"k{i}"  # a few duplicates
                payload = ledger.valid.get(event_id) or {
                    "event_id": event_id, "ts": now - 3000 + i, "user_id": user, "merchant_id": f"m{i % 11}",
                    "amount": round(rng.uniform(1, 300), 2), "currency": "EUR", "country": "FR", "channel": "web"}
                raw = ledger.add_valid(payload)
                user = payload["user_id"]
            await producer.send(settings.topics.transactions, raw, key=user.encode())
            if label_every and i % label_every == 0:
                label = {"event_id": f"k{i}", "is_fraud": i % (3 * label_every) == 0, "ts": now - 2000 + i}
                await producer.send(settings.topics.fraud_labels, json.dumps(label).encode(), key=f"k{i}".encode())
            await asyncio.sleep(max(0.0, (i + 1) * span_s / events - (time.monotonic() - started)))
        await producer.flush()
    finally:
        await producer.stop()


async def produce_steady(settings: Settings, events: int, span_s: float, prefix: str = "r") -> None:
    """``events`` valid transactions r0, r1... (``prefix``) of 30 users, evenly over ``span_s`` seconds."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    now, started = time.time(), time.monotonic()
    try:
        for i in range(events):
            doc = {"event_id": f"{prefix}{i}", "ts": now - 900 + i, "user_id": f"u{i % 30}", "merchant_id": "m",
                   "amount": 10.0 + i % 90, "currency": "EUR", "country": "FR", "channel": "web"}
            await producer.send(settings.topics.transactions, json.dumps(doc).encode(), key=doc["user_id"].encode())
            await asyncio.sleep(max(0.0, (i + 1) * span_s / events - (time.monotonic() - started)))
        await producer.flush()
    finally:
        await producer.stop()


async def first_decisions(settings: Settings, events: int, prefix: str = "") -> dict[str, dict]:
    """The first decision for each event_id starting with ``prefix``, until ``events`` have one (or 90 s)."""
    return {event_id: docs[0] for event_id, docs in (await every_decision(settings, events, prefix)).items()}


async def every_decision(settings: Settings, events: int, prefix: str = "") -> dict[str, list[dict]]:
    """Every decision for each event_id starting with ``prefix`` (raw duplicates included), until
    ``events`` have one (or 90 s)."""
    consumer = AIOKafkaConsumer(settings.topics.fraud_decisions, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    decisions, deadline = {}, time.monotonic() + 90
    try:
        while len(decisions) < events and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    doc = json.loads(r.value)
                    if doc["event_id"].startswith(prefix):
                        decisions.setdefault(doc["event_id"], []).append(doc)
    finally:
        await consumer.stop()
    return decisions


async def collect(settings: Settings, expected: int, timeout: float = 180.0) -> tuple[list[dict], list[dict]]:
    """Every decision and dead letter, until ``expected`` outcomes of transactions came (dead letters
    of other topics, labels for example, do not count) and nothing more for 5 s."""
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
            outcomes = len({d["event_id"] for d in decisions}) + sum(d["source_topic"] == t.transactions for d in dead)
            if outcomes >= expected and time.monotonic() - idle_since > 5:
                break
    finally:
        await consumer.stop()
    return decisions, dead


async def user_history(settings: Settings, users: set[str]) -> dict[str, int]:
    redis, keys = redis_client(settings), RedisKeys.from_settings(settings)
    try:
        return {u: UserState.from_bytes(raw).count for u in users if (raw := await redis.get(keys.user(u)))}
    finally:
        await redis.aclose()


def outcome(settings: Settings, ledger: Ledger) -> Report:
    """Read back what the workers did with the ledger's events and verify it."""
    expected = len(ledger.valid) + ledger.malformed + ledger.duplicates
    decisions, dead = asyncio.run(collect(settings, expected))
    history = asyncio.run(user_history(settings, {p["user_id"] for p in ledger.valid.values()}))
    report = verify(ledger, decisions, dead, history)
    print(f"valid {len(ledger.valid)}, malformed {ledger.malformed}, duplicates sent {ledger.duplicates}; {report}")
    return report


def assert_nothing_lost_nothing_decided_twice(report: Report, ledger: Ledger) -> None:
    assert report.missing == [] and report.dead_lettered == [] and report.effective_duplicates == []
    assert report.order_violations == 0 and report.state_mismatches == []
    assert report.dead_letters_by_stage.get("validate") == ledger.malformed
    assert report.dead_letters_by_stage.get("dedupe", 0) == ledger.duplicates
