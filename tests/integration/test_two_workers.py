"""Two workers, one fraud model: one learner publishes, the other follows; decisions name the version."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis
from waiting import wait_until, wait_until_async

from agents.commands.topics import create_topics
from agents.dev.embedded import ManagedProcess, free_port
from agents.dev.probes import metric, ready
from agents.stores.checkpoints import RedisCheckpoints
from online_models.engine import FraudEngine
from schemas.settings import Settings

pytestmark = pytest.mark.integration


def start(settings: Settings, name: str, tmp_path: Path) -> tuple[ManagedProcess, int]:
    port = free_port()
    env = {**os.environ, **settings.replace(web_port=port, data_dir=str(tmp_path / name)).to_env(),
           "PYTHONUNBUFFERED": "1"}  # the test reads the log while the worker runs
    return ManagedProcess(name, [sys.executable, "-m", "agents", "worker", "--loglevel", "info"], env=env,
                          log_dir=tmp_path), port


def tx(event_id: str, user: str, amount: float, ts: float) -> bytes:
    return json.dumps({"event_id": event_id, "ts": ts, "user_id": user, "merchant_id": f"m-{user}",
                       "amount": amount, "currency": "EUR", "country": "FR", "channel": "app"}).encode()


LABELS = 300  # one per transaction, every 12th a fraud
PROBES = 60


def lineage(settings: Settings) -> str:
    """The version's generation and labels-learned parts once every label is learned: the classifier
    keeps only a share of legitimate examples (by event id), so count with a fresh one."""
    engine = FraudEngine.from_settings(settings)
    for i in range(LABELS):
        engine.classifier.learn_one({"x": 1.0}, i % 12 == 0, event_id=f"t{i}")
    generation, learned, _ = engine.model_version.split(".")
    return f"{generation}.{learned}"


class Registry:
    """Every fraud model version the registry has held while the test watched (it keeps the last 10)."""

    def __init__(self, store: RedisCheckpoints) -> None:
        self.store = store
        self.published: set[str] = set()

    async def poll(self) -> set[str]:
        self.published |= {h.get("model_version") for h in await self.store.headers("fraud")}
        return self.published

    async def has_held(self, version: str) -> bool:
        return version in await self.poll()

    async def wait_for(self, version: str, timeout: float) -> None:
        try:
            await wait_until_async(lambda: self.has_held(version), timeout, f"the learner to publish model {version}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the registry held {sorted(self.published)}") from None


def says(log: Path, verb: str, version: str) -> bool:
    """Whether a worker's log says it published (or serves) the model ``version``."""
    return re.search(rf"{verb} fraud checkpoint v\d+ \(model {re.escape(version)}\)", log.read_text()) is not None


def one_publishes_the_other_serves(logs: list[Path], version: str) -> bool:
    published = [says(log, "published", version) for log in logs]
    served = [says(log, "serving", version) for log in logs]
    return sorted(published) == [False, True] and served == [not p for p in published]


async def scenario(settings: Settings, ports: list[int], logs: list[Path]) -> tuple[dict[str, str], dict]:
    t, now = settings.topics, time.time()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    consumer = AIOKafkaConsumer(t.fraud_decisions, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    registry = Registry(RedisCheckpoints.on_redis(redis, settings))
    labelled = lineage(settings)
    try:
        for i in range(LABELS):
            await producer.send(t.transactions, tx(f"t{i}", f"u{i % 40}", 5 + (i * 17) % 400, now - 1200 + i),
                                key=f"u{i % 40}".encode())
        await producer.flush()
        # Labels after every decision: then each joins its snapshot at once, and the version's
        # labelled part is known exactly. (A label racing its transaction's decision is the label
        # path's subject, not this test's.)
        await wait_until_async(lambda: sum(metric(p, "streamsense_decisions_total") for p in ports) == LABELS, 60,
                               f"all {LABELS} transactions decided")
        for i in range(LABELS):
            label = {"event_id": f"t{i}", "is_fraud": i % 12 == 0, "ts": now}
            await producer.send(t.fraud_labels, json.dumps(label).encode(), key=f"t{i}".encode())
        await producer.flush()
        # Learning done: the learner has published the model that learned every label and transaction,
        # and the other worker serves it.
        trained = f"{labelled}.{LABELS}"
        await registry.wait_for(trained, 120)
        await wait_until_async(lambda: one_publishes_the_other_serves(logs, trained), 30,
                               f"one worker to publish model {trained} and the other to serve it")
        decided_before = [metric(p, "streamsense_decisions_total") for p in ports]
        for i in range(PROBES):  # probes on 60 users: both workers own some of them
            await producer.send(t.transactions, tx(f"probe{i}", f"probe-user-{i}", 20.0, now - 300),
                                key=f"probe-user-{i}".encode())
        await producer.flush()
        versions: dict[str, str] = {}

        async def probes_decided() -> bool:
            await registry.poll()  # while probes are decided, so that no checkpoint is pruned unseen
            for records in (await consumer.getmany(timeout_ms=200)).values():
                docs = [json.loads(r.value) for r in records]
                versions.update((d["event_id"], d["model_version"]) for d in docs if d["event_id"].startswith("probe"))
            return len(versions) == PROBES

        await wait_until_async(probes_decided, 60, f"decisions for all {PROBES} probes", interval=0)
        per_worker = [metric(p, "streamsense_decisions_total") - b for p, b in zip(ports, decided_before, strict=True)]
        # The learner decides with its live model (its anomaly part moves with every probe it learns)
        # and publishes at the next interval; wait for the model that has learned every probe.
        everything = f"{labelled}.{LABELS + PROBES}"
        await registry.wait_for(everything, 60)
        return versions, {"per_worker": per_worker, "published": registry.published, "labelled": labelled}
    finally:
        await redis.aclose()
        await producer.stop()
        await consumer.stop()


def test_two_workers_serve_the_one_published_model(settings: Settings, tmp_path) -> None:
    settings = settings.replace(checkpoint_interval_s=1.0)
    asyncio.run(create_topics(settings))
    workers = [start(settings, f"worker-{n}", tmp_path) for n in ("a", "b")]
    logs = [tmp_path / f"worker-{n}.log" for n in ("a", "b")]
    try:
        # Both ready at once: the second worker's assignment means the group has settled on two members.
        wait_until(lambda: all(ready(port) for _, port in workers), 90, "both workers ready")
        versions, facts = asyncio.run(scenario(settings, [port for _, port in workers], logs))
    finally:
        for proc, _ in workers:
            proc.stop()
    texts = [log.read_text() for log in logs]
    publishers = [n for n, text in zip((0, 1), texts, strict=True) if "published fraud checkpoint" in text]
    assert len(publishers) == 1, publishers  # exactly one learner
    learner, follower = publishers[0], 1 - publishers[0]
    assert "published fraud checkpoint" not in texts[follower] and "serving fraud checkpoint" in texts[follower]
    assert len(versions) == PROBES and all(facts["per_worker"]), facts  # both workers decided probes
    # One lineage: every probe was decided by a model that had learned every label and every
    # transaction before the probes, and had not yet learned that probe.
    assert {v.rsplit(".", 1)[0] for v in versions.values()} == {facts["labelled"]}, versions
    assert all(LABELS <= int(v.rsplit(".", 1)[1]) < LABELS + PROBES for v in versions.values()), versions
    # The follower serves published models only; the learner serves its live one, so only its
    # decisions may name a version that was never published.
    unpublished = [e for e, v in versions.items() if v not in facts["published"]]
    assert len(unpublished) <= facts["per_worker"][learner], (unpublished, facts)
