"""Two workers, one fraud model: one learner publishes, the other follows; decisions name the version."""

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
from agents.dev.embedded import ManagedProcess, free_port
from agents.dev.probes import metric, ready
from agents.stores.checkpoints import RedisCheckpoints
from schemas.settings import Settings

pytestmark = pytest.mark.integration


def start(settings: Settings, name: str, tmp_path: Path) -> tuple[ManagedProcess, int]:
    port = free_port()
    env = {**os.environ, **settings.replace(web_port=port, data_dir=str(tmp_path / name)).to_env()}
    return ManagedProcess(name, [sys.executable, "-m", "agents", "worker", "--loglevel", "info"], env=env,
                          log_dir=tmp_path), port


def tx(event_id: str, user: str, amount: float, ts: float) -> bytes:
    return json.dumps({"event_id": event_id, "ts": ts, "user_id": user, "merchant_id": f"m-{user}",
                       "amount": amount, "currency": "EUR", "country": "FR", "channel": "app"}).encode()


async def scenario(settings: Settings, ports: list[int]) -> tuple[dict[str, str], dict]:
    t, now = settings.topics, time.time()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    consumer = AIOKafkaConsumer(t.fraud_decisions, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    store = RedisCheckpoints.on_redis(redis, settings)
    try:
        for i in range(300):
            await producer.send(t.transactions, tx(f"t{i}", f"u{i % 40}", 5 + (i * 17) % 400, now - 1200 + i),
                                key=f"u{i % 40}".encode())
        for i in range(300):
            label = {"event_id": f"t{i}", "is_fraud": i % 12 == 0, "ts": now}
            await producer.send(t.fraud_labels, json.dumps(label).encode(), key=f"t{i}".encode())
        await producer.flush()
        deadline, last, since = time.monotonic() + 90, None, time.monotonic()
        while time.monotonic() < deadline:  # learning done: the registry's latest stops moving
            latest = await store.latest("fraud")
            if latest != last:
                last, since = latest, time.monotonic()
            elif latest and time.monotonic() - since > 5:
                break
            await asyncio.sleep(0.5)
        header = (await store.load("fraud", last))[1]
        decided_before = [metric(p, "streamsense_decisions_total") for p in ports]
        for i in range(60):  # probes on 60 users: both workers own some of them
            await producer.send(t.transactions, tx(f"probe{i}", f"probe-user-{i}", 20.0, now - 300),
                                key=f"probe-user-{i}".encode())
        await producer.flush()
        versions, deadline = {}, time.monotonic() + 60
        while len(versions) < 60 and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    doc = json.loads(r.value)
                    if doc["event_id"].startswith("probe"):
                        versions[doc["event_id"]] = doc["model_version"]
        per_worker = [metric(p, "streamsense_decisions_total") - b for p, b in zip(ports, decided_before, strict=True)]
        # The learner decides with its live model and publishes it at the next checkpoint interval.
        published, deadline = set(), time.monotonic() + 5 * settings.checkpoint_interval_s + 5
        while not set(versions.values()) <= published and time.monotonic() < deadline:
            published = {h.get("model_version") for h in await store.headers("fraud")}
            await asyncio.sleep(0.5)
        return versions, {"header": header, "per_worker": per_worker, "published": published}
    finally:
        await redis.aclose()
        await producer.stop()
        await consumer.stop()


def test_two_workers_serve_the_one_published_model(settings: Settings, tmp_path) -> None:
    settings = settings.replace(checkpoint_interval_s=1.0)
    asyncio.run(create_topics(settings))
    workers = [start(settings, f"worker-{n}", tmp_path) for n in ("a", "b")]
    try:
        deadline = time.monotonic() + 90
        while not all(ready(port) for _, port in workers) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # let the group settle on two members before traffic
        versions, facts = asyncio.run(scenario(settings, [port for _, port in workers]))
    finally:
        for proc, _ in workers:
            proc.stop()
    logs = [(tmp_path / f"worker-{n}.log").read_text() for n in ("a", "b")]
    publishers = [n for n, log in zip("ab", logs, strict=True) if "published fraud checkpoint" in log]
    assert len(publishers) == 1, publishers  # exactly one learner
    follower = logs["ab".index("b" if publishers == ["a"] else "a")]
    assert "serving fraud checkpoint" in follower
    assert len(versions) == 60 and all(facts["per_worker"]), facts  # both workers decided probes
    # One lineage: every probe decided by a published version that has learned every label. (The
    # probes themselves feed the anomaly model, the version's last part, so it may move meanwhile.)
    assert set(versions.values()) <= facts["published"], (versions, facts)
    labelled = facts["header"]["model_version"].rsplit(".", 1)[0]
    assert {v.rsplit(".", 1)[0] for v in versions.values()} == {labelled}
