"""Poison against a running worker: 10 MB values, deep nesting, NaN and Infinity, huge integers,
wrong types, a lone surrogate, a time in year 9999, a key that is not the user_id, invalid UTF-8,
invalid JSON, between valid events. Each poison message is one dead letter, every valid event is
decided, the lag returns to 0 and the worker's memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaProducer
from scenario import collect, create_all_topics, start

from agents.bench.io import rss_bytes
from agents.dev.probes import metric
from schemas.settings import Settings

pytestmark = pytest.mark.integration
MB = 1024 * 1024


def valid(i: int) -> bytes:
    return json.dumps({"event_id": f"v{i}", "ts": time.time() - 60, "user_id": f"u{i % 7}", "merchant_id": "m1",
                       "amount": 12.5, "currency": "EUR", "country": "FR", "channel": "web"}).encode()


def owner(raw: bytes) -> bytes | None:
    """The key a producer gives a message: its user_id, when it has one."""
    try:
        doc = json.loads(raw)
        return b"someone-else" if doc["event_id"] == "rekeyed" else doc["user_id"].encode()
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):  # UnicodeEncodeError is a ValueError
        return None


def poison() -> dict[str, bytes]:
    base = json.loads(valid(0))
    return {
        "10 MB value": b'{"event_id": "big", "pad": "' + b"x" * (10 * MB) + b'"}',
        "10 MB of nesting": b"[" * (5 * MB) + b"]" * (5 * MB),
        "deep nesting in 60 KB": b'{"a":' * 12_000 + b"1" + b"}" * 12_000,
        "NaN": json.dumps({**base, "event_id": "nan", "amount": float("nan")}).encode(),
        "Infinity": json.dumps({**base, "event_id": "inf", "amount": float("inf")}).encode(),
        "huge integer": json.dumps({**base, "event_id": "huge"}).encode().replace(b"12.5", b"9" * 5000),
        "wrong type": json.dumps({**base, "event_id": "wrong", "amount": "12.5"}).encode(),
        "lone surrogate user_id": json.dumps({**base, "event_id": "surrogate", "user_id": "\ud800"}).encode(),
        "dated 9999": json.dumps({**base, "event_id": "future", "ts": "9999-12-31T23:59:59Z"}).encode(),
        "key of another user": json.dumps({**base, "event_id": "rekeyed", "user_id": "not-the-key"}).encode(),
        "invalid UTF-8": b'{"event_id": "\xff\xfe", "amount": 1}',
        "invalid JSON": b'{"event_id": "broken", ',
    }


async def send_all(settings: Settings, messages: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, max_request_size=16 * MB, acks="all")
    await producer.start()
    try:
        for i, raw in enumerate(messages):
            await producer.send(settings.topics.transactions, raw, key=owner(raw) or f"u{i % 7}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def lag(port: int, topic: str) -> float:
    return metric(port, "streamsense_consumer_lag", topic=topic)


def test_poison_becomes_dead_letters_and_the_worker_goes_on(settings: Settings, tmp_path) -> None:
    create_all_topics(settings)
    worker = start(settings, tmp_path, "worker")
    bad = poison()
    mixed = [m for i, raw in enumerate(list(bad.values()) * 2) for m in (valid(i), raw)]  # each poison twice
    try:
        asyncio.run(send_all(settings, [valid(100 + i) for i in range(20)]))  # warm up: joined and deciding
        asyncio.run(collect(settings, 20, timeout=90))
        rss_before = rss_bytes(worker.pid)
        asyncio.run(send_all(settings, mixed))
        decisions, dead = asyncio.run(collect(settings, 20 + len(mixed), timeout=120))
        deadline = time.monotonic() + 30
        while lag(settings.web_port, settings.topics.transactions) > 0 and time.monotonic() < deadline:
            time.sleep(1)  # the lag is sampled every 2 s
        final_lag = lag(settings.web_port, settings.topics.transactions)
        rss_after = rss_bytes(worker.pid)
        assert worker.alive()
    finally:
        worker.stop()
    assert {d["event_id"] for d in decisions} >= {f"v{i}" for i in range(2 * len(bad))}
    assert len({(d["partition"], d["offset"]) for d in dead}) == 2 * len(bad)  # one per poison message
    assert all(d["stage"] == "validate" and len(d["raw_b64"]) <= 4096 * 4 / 3 + 4 for d in dead)
    assert final_lag == 0
    print(f"worker RSS {rss_before / MB:.0f} MiB before, {rss_after / MB:.0f} MiB after "
          f"{sum(map(len, mixed)) / MB:.0f} MiB of mixed poison")
    assert rss_after - rss_before < 200 * MB
