"""End to end on the real broker and real Redis: an outside aiokafka client, the README's contract only.

N transactions, some malformed and some duplicated, in; exactly one decision per distinct valid
event_id and exactly one dead letter per malformed or duplicated message out.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from online_models.decisions import decide
from online_models.engine import MODEL_NAME
from schemas.settings import Settings

pytestmark = pytest.mark.integration

VALID = 300
DUPLICATES = 15
MALFORMED = [
    b"{not json",
    b'{"event_id": "nan", "ts": NaN, "user_id": "u", "merchant_id": "m", "amount": 1, "currency": "EUR",'
    b' "country": "FR", "channel": "web"}',
    b'{"event_id": "neg", "ts": 1700000000, "user_id": "u", "merchant_id": "m", "amount": -5,'
    b' "currency": "EUR", "country": "FR", "channel": "web"}',
    b'{"event_id": "enum", "ts": 1700000000, "user_id": "u", "merchant_id": "m", "amount": 5,'
    b' "currency": "EUR", "country": "FR", "channel": "fax"}',
    b'{"event_id": "missing", "ts": 1700000000}',
    b"\xff\xfe not utf-8",
    b"[1, 2, 3]",
    b'{"event_id": "extra", "ts": 1700000000, "user_id": "u", "merchant_id": "m", "amount": 5,'
    b' "currency": "EUR", "country": "FR", "channel": "web", "surprise": 1}',
    b"x" * 200_000,
]


def transaction(i: int, now: float) -> dict:
    return {
        "event_id": f"evt-{i}", "ts": now - 3600 + i, "user_id": f"user-{i % 40}",
        "merchant_id": f"m-{i % 13}", "amount": round(5 + (i * 7.3) % 180, 2), "currency": "EUR",
        "country": "FR" if i % 17 else "BR", "channel": "web", "device_id": f"dev-{i % 40}",
    }


async def publish_and_collect(settings: Settings, messages: list[tuple[bytes | None, bytes]], expect: int,
                              timeout: float = 90.0) -> tuple[list[dict], list[dict]]:
    t = settings.topics
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    consumer = AIOKafkaConsumer(t.fraud_decisions, t.dead_letters, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    decisions, dead = [], []
    try:
        for key, value in messages:
            await producer.send(t.transactions, value, key=key)
        await producer.flush()
        deadline = time.monotonic() + timeout
        while len(decisions) + len(dead) < expect and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                target = dead if tp.topic == t.dead_letters else decisions
                target.extend(json.loads(r.value) for r in records)
        # Anything extra (a second decision) would arrive shortly after: wait a little.
        for tp, records in (await consumer.getmany(timeout_ms=3000)).items():
            target = dead if tp.topic == t.dead_letters else decisions
            target.extend(json.loads(r.value) for r in records)
    finally:
        await producer.stop()
        await consumer.stop()
    return decisions, dead


def test_every_transaction_ends_as_one_decision_or_one_dead_letter(settings: Settings, worker) -> None:
    now = time.time()
    valid = [transaction(i, now) for i in range(VALID)]
    messages = [(tx["user_id"].encode(), json.dumps(tx).encode()) for tx in valid]
    messages += [(valid[i]["user_id"].encode(), json.dumps(valid[i]).encode()) for i in range(DUPLICATES)]
    messages += [(b"bad", raw) for raw in MALFORMED]

    decisions, dead = asyncio.run(publish_and_collect(settings, messages, VALID + DUPLICATES + len(MALFORMED)))

    ids = [d["event_id"] for d in decisions]
    assert sorted(ids) == sorted(tx["event_id"] for tx in valid)  # exactly one each, none missing
    assert not any(d["degraded"] for d in decisions)  # Redis answered every batch (also a Redis Cluster)
    thresholds = settings.review_threshold, settings.decline_threshold
    assert all(d["decision"] == decide(d["score"], *thresholds) for d in decisions)  # each names its score's outcome
    assert all(d["model"] == MODEL_NAME and re.fullmatch(r"\d+\.\d+\.\d+", d["model_version"]) for d in decisions)
    stages = sorted(d["stage"] for d in dead)
    assert stages == sorted(["dedupe"] * DUPLICATES + ["validate"] * len(MALFORMED))
    too_large = [d for d in dead if d["error_code"] == "too_large"]
    assert len(too_large) == 1 and too_large[0]["truncated"] and too_large[0]["raw_size"] == 200_000
    assert {d["source_topic"] for d in dead} == {settings.topics.transactions}
