"""Experiments on the real Redis and broker: the command publishes them, the fraud path follows them,
each decision names its arm, the arms' outcomes are counted; stopping puts everyone on control."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer

from agents.clients import redis_client
from agents.commands import experiments as command
from agents.commands.topics import create_topics
from agents.experiment_arms import ExperimentArms
from agents.fraud_processor import FraudProcessor
from agents.messages import RawMessage
from agents.stores.checkpoints import RedisCheckpoints
from agents.stores.experiments import ExperimentStore
from agents.stores.fraud import FraudStore
from agents.stores.keys import RedisKeys
from online_models.engine import FraudEngine
from online_models.experiments import CONTROL, TREATMENT
from schemas.records import Transaction
from schemas.settings import Settings

pytestmark = pytest.mark.integration

NOW = 1_760_000_000.0


def flagging_engine(settings: Settings) -> FraudEngine:
    """A deliberately worse model: taught that every transaction is fraud, it reviews or declines all."""
    engine = FraudEngine.from_settings(settings)
    for i in range(150):
        tx = Transaction(f"t{i}", NOW - 5000 + i, f"w{i % 9}", "m", 10.0 + i % 40, "EUR", "FR", "web", "d")
        scored = engine.score(tx, None, {}, decided_at=0.0)
        engine.learn_label(scored.snapshot, True, event_id=tx.event_id)
    return engine


def tx_message(i: int, offset: int) -> RawMessage:
    user = f"user-{i % 97}"
    doc = {"event_id": f"e{i}", "ts": NOW - 1000 + i, "user_id": user, "merchant_id": f"m{i % 5}",
           "amount": 20.0 + i % 13, "currency": "EUR", "country": "FR", "channel": "app", "device_id": "d1"}
    return RawMessage("transactions", 0, offset, user.encode(), json.dumps(doc).encode(), None)


def label_message(i: int, offset: int, is_fraud: bool) -> RawMessage:
    doc = {"event_id": f"e{i}", "is_fraud": is_fraud, "ts": NOW - 900 + i}
    return RawMessage("fraud-labels", 0, offset, f"e{i}".encode(), json.dumps(doc).encode(), None)


async def scenario(settings: Settings) -> dict:
    await create_topics(settings)
    redis = redis_client(settings)
    checkpoints = RedisCheckpoints.on_redis(redis, settings)
    worse = flagging_engine(settings)
    version = await checkpoints.save("fraud", worse.models(), {"model_version": worse.model_version})
    store = ExperimentStore.on_redis(redis, settings)
    arms = ExperimentArms(settings, store, checkpoints)
    engine = FraudEngine.from_settings(settings)
    processor = FraudProcessor(settings, engine, FraudStore(redis, RedisKeys.from_settings(settings), settings),
                               clock=lambda: NOW, arms=arms)
    consumer = AIOKafkaConsumer(settings.topics.model_events, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        started = await command.change(settings, "start", model="fraud", treatment=f"v{version}", share=50.0)
        with pytest.raises(SystemExit, match="already running"):
            await command.change(settings, "start", model="fraud", treatment=str(version), share=5.0)
        await arms.follow(engine)
        experiment = arms.running["fraud"]
        first = await processor.transactions.on_transactions([tx_message(i, i) for i in range(300)])
        labels = await processor.labels.on_labels([label_message(i, i, i % 10 == 0) for i in range(300)])
        await arms.flush()
        counts, scores = await store.outcomes(experiment.experiment_id)
        shown = await command.show(settings, model="fraud", out=_Sink())
        stopped = await command.change(settings, "stop", model="fraud", reason="enough")
        await arms.follow(engine)
        after = await processor.transactions.on_transactions([tx_message(i, i) for i in range(300, 320)])
        events = []
        deadline = time.monotonic() + 30
        while len(events) < 2 and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                events += [json.loads(r.value) for r in records]
        return {"version": version, "worse_model": worse.model_version, "experiment": experiment,
                "first": first, "labels": labels, "counts": counts, "scores": scores, "shown": shown,
                "started": started, "stopped": stopped, "after": after, "events": events}
    finally:
        await consumer.stop()
        await redis.aclose()


class _Sink:
    def write(self, text: str) -> None:
        pass


def test_an_experiment_routes_users_by_arm_counts_outcomes_and_stops(settings: Settings) -> None:
    r = asyncio.run(scenario(settings))
    exp = r["experiment"]
    assert exp.treatment == str(r["version"]) and exp.share == 50.0
    decisions = r["first"].decisions
    assert len(decisions) == 300 and not r["first"].refused
    by_arm = {CONTROL: [], TREATMENT: []}
    for i, d in enumerate(decisions):
        assert (d.experiment, d.arm) == (exp.experiment_id, exp.arm(f"user-{i % 97}"))  # sticky, by the hash
        by_arm[d.arm].append(d)
    assert by_arm[CONTROL] and by_arm[TREATMENT]
    # The treatment is the checkpoint (it flags everything); control is the worker's fresh model.
    assert {d.model_version for d in by_arm[TREATMENT]} == {r["worse_model"]}
    assert all(d.decision != "approve" for d in by_arm[TREATMENT])
    assert sum(d.decision != "approve" for d in by_arm[CONTROL]) < len(by_arm[CONTROL]) / 2
    # Counted per arm in Redis: decisions by outcome, labels with their confusion counts.
    counts = r["counts"]
    for arm, ds in by_arm.items():
        assert counts[arm]["n"] == len(ds)
        assert counts[arm].get("review", 0) + counts[arm].get("decline", 0) == sum(d.decision != "approve" for d in ds)
        assert counts[arm]["labels"] == len(ds) == len(r["scores"][arm])
        assert sum(counts[arm].get(c, 0) for c in ("tp", "fp", "fn", "tn")) == len(ds)
    assert counts[TREATMENT].get("fn", 0) == 0  # it flags everything: no fraud is missed
    assert "treatment" in r["shown"] and "decline_rate" in r["shown"]
    # Stopped: every user back on control, no experiment named.
    assert all(d.experiment is None and d.arm is None for d in r["after"].decisions)
    assert [(e["event"], e["experiment"], e["share"]) for e in r["events"]] == [
        ("experiment_started", exp.experiment_id, 50.0), ("experiment_stopped", exp.experiment_id, 0.0)]
    assert r["events"][1]["reason"] == "enough"
