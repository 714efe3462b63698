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
from api_client import call, keys
from redis.asyncio import Redis
from waiting import wait_until_async

from agents.commands.topics import create_topics
from agents.dev.embedded import ManagedProcess
from agents.dev.probes import group_offsets
from agents.stores.checkpoints import RedisCheckpoints
from online_models.engine import FraudEngine
from schemas.records import Transaction
from schemas.settings import Settings

pytestmark = pytest.mark.integration
TOKENS, API_KEYS = keys(("ops", "admin"))


def start_worker(settings: Settings, log_dir: Path, name: str) -> ManagedProcess:
    return ManagedProcess(name, [sys.executable, "-m", "agents", "worker", "--loglevel", "info"],
                          env={**os.environ, **settings.to_env()}, log_dir=log_dir)


def tx(event_id: str, user: str, merchant: str, amount: float, ts: float) -> bytes:
    return json.dumps({"event_id": event_id, "ts": ts, "user_id": user, "merchant_id": merchant, "amount": amount,
                       "currency": "EUR", "country": "FR", "channel": "web", "device_id": f"d-{user}"}).encode()


async def send_and_score(settings: Settings, messages: list[tuple[str, bytes]], wanted: set[str],
                         consumer: AIOKafkaConsumer, timeout: float = 90.0) -> dict[str, tuple[float, str]]:
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
                scores[doc["event_id"]] = doc["score"], doc["model_version"]
    assert wanted <= set(scores), f"missing decisions: {sorted(wanted - set(scores))[:5]}"
    return scores


def serving(settings: Settings) -> str:
    """The fraud model version the worker serves now."""
    status, _, doc = call(settings.web_port, "GET", "/v1/models", TOKENS["ops"])
    assert status == 200, doc
    return doc["fraud"]["version"]


def checkpoint_scores(settings: Settings, models: object, now: float) -> list[float]:
    """The probes' scores by the checkpoint's models, each on the checkpoint alone (nothing learned)."""
    engine = FraudEngine.from_settings(settings)
    engine.load(models)
    return [engine.score(Transaction(**json.loads(value)), None, {}, decided_at=now).decision.score
            for _, value in probes("", "p1", now)]


def probes(topic: str, round_: str, now: float) -> list[tuple[str, bytes]]:
    """Fresh users and merchants each round, same amounts and times: same features, so same scores
    exactly when the model is the same."""
    return [(topic, tx(f"{round_}-{i}", f"{round_}-u{i}", f"{round_}-m{i}", 3.0 + 97 * i, now - 600))
            for i in range(12)]


async def scenario(settings: Settings, tmp_path: Path) -> tuple[list[tuple[float, str]], list[float], dict]:
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

        async def everything_learned_is_published() -> bool:
            # Every label handled and committed (its learn example was produced before the commit), every
            # learn example learned and committed, and the newest checkpoint holding the model served.
            bootstrap, group = settings.bootstrap_servers, settings.app_id
            offsets = [*(await group_offsets(bootstrap, group, t.fraud_labels)).values(),
                       *(await group_offsets(bootstrap, group, settings.learn_topic)).values()]
            if any(end != committed for end, committed in offsets):
                return False
            headers = await store.headers("fraud")
            return bool(headers) and headers[-1]["model_version"] == await asyncio.to_thread(serving, settings)

        await wait_until_async(everything_learned_is_published, timeout=90,
                               what="the labels learned and the newest checkpoint holding them")
        header = (await store.headers("fraud"))[-1]
        models, _ = await store.load("fraud", header["version"])
        worker.kill()  # kill -9 once the newest checkpoint holds everything it learned
        worker = start_worker(settings, tmp_path, "worker-b")
        decided = await send_and_score(settings, probes(t.transactions, "p1", now), {f"p1-{i}" for i in range(12)},
                                       consumer)
        await redis.aclose()
        return [decided[f"p1-{i}"] for i in range(12)], checkpoint_scores(settings, models, now), header
    finally:
        worker.stop()
        await consumer.stop()


def test_a_killed_worker_restores_its_checkpoint_and_scores_the_same(settings: Settings, tmp_path) -> None:
    settings = settings.replace(checkpoint_interval_s=1.0, api_keys=API_KEYS)
    decided, expected, header = asyncio.run(scenario(settings, tmp_path))
    version, labels_learned = header["model_version"], header["model_version"].split(".")[1]
    # Not one probe is scored by the fresh model a restarted worker begins with (1.0.0).
    assert {v.split(".")[1] for _, v in decided} == {labels_learned}
    # The anomaly model also learns the probes as they are decided (the last number of the version), so
    # a probe is scored by the restored model or by one that has learned part of the round; the decision
    # names which. The first is scored by the restored one, and the restored model scores as the
    # checkpoint does.
    same_model = [(score, want) for (score, v), want in zip(decided, expected, strict=True) if v == version]
    assert same_model and all(score == want for score, want in same_model), same_model
    learned = int(labels_learned)
    assert learned > 100 and header["offsets"]  # 20 chargebacks and the kept half of 180 confirmations
    restored = (tmp_path / "worker-b.log").read_text()
    assert "restored checkpoint fraud" in restored and f"model {version}" in restored
