"""A canary on a running worker, with simulated traffic and its labels: a deliberately worse treatment
is rolled back automatically (users back on control, a model-events record, a drift signal); a
better one holds its guardrails and is ramped 25 -> 50 -> 100 % automatically."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
import urllib.request

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis

from agents.commands import experiments as command
from agents.commands.topics import create_topics
from agents.dev.embedded import ManagedProcess
from agents.sim.traffic import TrafficSimulator
from agents.stores.checkpoints import RedisCheckpoints
from agents.stores.experiments import ExperimentStore
from online_models.engine import FraudEngine
from online_models.experiments import CONTROL, TREATMENT, Guardrails
from schemas.records import Transaction
from schemas.settings import Settings
from streams.fraud_features import apply_merchant_update
from tests.waiting import wait_until_async

pytestmark = pytest.mark.integration
AHEAD = 60
WARM_UP = 400


def trained(settings: Settings, events, label) -> FraudEngine:
    """A model that learned ``events`` as a worker would: each user's feature state carried along."""
    engine = FraudEngine.from_settings(settings)
    users: dict = {}
    merchants: dict = {}
    for ev in events:
        tx = Transaction(**ev.payload)
        scored = engine.score(tx, users.get(tx.user_id), merchants.get(tx.merchant_id, {}), decided_at=0.0)
        users[tx.user_id] = scored.user_state
        merchants[tx.merchant_id] = apply_merchant_update(merchants.get(tx.merchant_id, {}), scored.merchant_update)
        engine.learn_unlabelled(scored.snapshot.features)
        engine.learn_label(scored.snapshot, label(ev), event_id=ev.payload["event_id"])
    return engine


def transactions(sim: TrafficSimulator, n: int | None = None):
    events = (ev for ev in sim.events() if ev.kind == "transaction")
    return itertools.islice(events, n) if n is not None else events


async def send_traffic(settings: Settings, stream, sent: dict, outcomes: dict, stop: asyncio.Event) -> None:
    """Transactions and, right behind each, its label (the simulator's truth), until ``stop``; at most
    ``AHEAD`` transactions ahead of the decisions and dead letters seen, so the worker never lags far behind."""
    topics = settings.topics
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        while not stop.is_set():
            if len(sent) - len(outcomes[topics.fraud_decisions]) - len(outcomes[topics.dead_letters]) > AHEAD:
                await asyncio.sleep(0.05)
                continue
            for ev in itertools.islice(stream, 20):
                event_id = ev.payload["event_id"]
                sent[event_id] = ev.payload["user_id"]
                await producer.send(settings.topics.transactions, json.dumps(ev.payload).encode(), key=ev.key.encode())
                label = {"event_id": event_id, "is_fraud": bool(ev.is_fraud), "ts": ev.ts}
                await producer.send(settings.topics.fraud_labels, json.dumps(label).encode(), key=event_id.encode())
            await producer.flush()
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()


def scrape(settings: Settings) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=5) as response:
        return response.read().decode()


async def status(store: ExperimentStore, experiment_id: str):
    return await store.get(experiment_id)


async def scenario(settings: Settings, tmp_path) -> dict:
    await create_topics(settings)
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    checkpoints, store = RedisCheckpoints.on_redis(redis, settings), ExperimentStore.on_redis(redis, settings)
    now = time.time()
    # Deliberately worse: taught the opposite of the truth, it flags the legitimate and approves fraud.
    worse = trained(settings, transactions(TrafficSimulator(seed=5, start_ts=now - 25 * 86400, users=300,
                                                            fraud_share=0.15), 800), lambda ev: not ev.is_fraud)
    better = trained(settings, transactions(TrafficSimulator(seed=7, start_ts=now - 25 * 86400, users=300,
                                                             fraud_share=0.15), 800), lambda ev: bool(ev.is_fraud))
    versions = {}
    for name, engine in (("worse", worse), ("better", better), ("control", FraudEngine.from_settings(settings))):
        versions[name] = await checkpoints.save("fraud", engine.models(), {"model_version": engine.model_version})
    # The worker starts on the newest checkpoint, the fresh control model.
    proc = ManagedProcess("worker", [sys.executable, "-m", "agents", "worker", "--loglevel", "warning"],
                          env={**os.environ, **settings.to_env()}, log_dir=tmp_path)
    topics = (settings.topics.fraud_decisions, settings.topics.model_events, settings.topics.drift_signals,
              settings.topics.dead_letters)
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    records: dict[str, list] = {topic: [] for topic in topics}

    async def drain() -> None:
        for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
            records[tp.topic] += [json.loads(r.value) for r in batch]

    # Simulated time runs about 2,400 transactions a day: 20 days back leaves room for any run.
    stream = transactions(TrafficSimulator(seed=3, start_ts=now - 20 * 86400, users=400))
    sent: dict[str, str] = {}
    try:
        stop = asyncio.Event()
        traffic = asyncio.create_task(send_traffic(settings, stream, sent, records, stop))

        async def decided(n: int) -> bool:
            await drain()
            return len(records[settings.topics.fraud_decisions]) >= n

        # A fresh model flags more while every user and merchant is new: the canaries start once it has warmed up.
        await wait_until_async(lambda: decided(WARM_UP), 120, f"{WARM_UP} decisions before the experiments")
        guard = Guardrails(max_flag_increase=0.05, min_decisions=100, min_labels=30, ramp_after=40)
        first = await command.change(settings, "start", model="fraud", treatment=str(versions["worse"]),
                                     share=25.0, guardrails=guard)

        async def finished(experiment_id: str, done) -> object:
            await drain()
            assert not traffic.done() and proc.alive(), "traffic or worker stopped"
            found = await status(store, experiment_id)
            return found if done(found) else None

        async def published(kind: str, experiment_id: str, share: float) -> bool:
            await drain()
            return (kind, experiment_id, share) in [(e["event"], e["experiment"], e["share"])
                                                    for e in records[settings.topics.model_events]]

        rolled = await wait_until_async(lambda: finished(first.experiment, lambda e: not e.running), 240,
                                        "the worse treatment rolled back")
        await wait_until_async(lambda: published("experiment_rolled_back", first.experiment, 0.0), 30,
                               "the rollback's model-events record")
        # Users of its treatment arm are back on control: decisions from now on name no experiment.
        after_rollback = len(sent)
        async def decided_since_rollback() -> bool:
            await drain()
            order = {event_id: i for i, event_id in enumerate(sent)}
            return sum(order.get(d["event_id"], -1) >= after_rollback
                       for d in records[settings.topics.fraud_decisions]) >= 80

        await wait_until_async(decided_since_rollback, 120, "decisions of transactions sent after the rollback")
        second = await command.change(settings, "start", model="fraud", treatment=str(versions["better"]),
                                      share=25.0, guardrails=guard)
        ramped = await wait_until_async(lambda: finished(second.experiment, lambda e: e.share == 100.0), 300,
                                        "the better treatment ramped to 100 %")
        await wait_until_async(lambda: published("experiment_ramped", second.experiment, 100.0), 30,
                               "the last ramp's model-events record")
        stop.set()
        await traffic
        await drain()
        counts, _ = await store.outcomes(second.experiment)
        metrics = await asyncio.to_thread(scrape, settings)
        return {"first": first, "rolled": rolled, "second": second, "ramped": ramped, "records": records,
                "sent": sent, "after_rollback": after_rollback, "counts": counts, "metrics": metrics}
    finally:
        await consumer.stop()
        await redis.aclose()
        proc.stop()


def test_a_worse_canary_is_rolled_back_and_a_better_one_ramps(settings: Settings, tmp_path) -> None:
    settings = settings.replace(checkpoint_interval_s=3600.0)  # the worker publishes no version of its own
    r = asyncio.run(scenario(settings, tmp_path))
    topics = settings.topics
    first, second = r["first"].experiment, r["second"].experiment
    assert r["rolled"].status == "rolled_back" and "review+decline" in r["rolled"].reason
    events = [(e["event"], e["experiment"], e["share"]) for e in r["records"][topics.model_events]]
    assert events[:2] == [("experiment_started", first, 25.0), ("experiment_rolled_back", first, 0.0)]
    assert events[2:] == [("experiment_started", second, 25.0), ("experiment_ramped", second, 50.0),
                          ("experiment_ramped", second, 100.0)]
    signals = [s for s in r["records"][topics.drift_signals] if s["signal_id"] == f"guardrail-{first}"]
    assert len(signals) == 1 and signals[0]["severity"] == "critical" and signals[0]["target"] == "score"
    assert signals[0]["statistic"] > signals[0]["threshold"]
    # Every decision of the first experiment names its arm by the hash; once it was rolled back, its
    # treatment users were decided by control (no experiment named) until the second started.
    order = {event_id: i for i, event_id in enumerate(r["sent"])}
    decisions = [d for d in r["records"][topics.fraud_decisions] if d["event_id"] in order]
    in_first = [d for d in decisions if d.get("experiment") == first]
    as_run = r["rolled"].with_status("running", "")  # the arms it had while it ran
    assert in_first and all(d["arm"] == as_run.arm(r["sent"][d["event_id"]]) for d in in_first)
    def flag_rate(arm: str) -> float:
        decided = [d for d in in_first if d["arm"] == arm]
        return sum(d["decision"] != "approve" for d in decided) / len(decided)
    assert flag_rate(TREATMENT) > flag_rate(CONTROL) + 0.05
    between = [d for d in decisions if order[d["event_id"]] >= r["after_rollback"] and d.get("experiment") != second]
    treatment_users = [d for d in between if as_run.arm(r["sent"][d["event_id"]]) == TREATMENT]
    assert treatment_users and all("experiment" not in d for d in between)
    # The better treatment held: its review+decline rate within the bound of control's, and it was ramped.
    counts = r["counts"]
    assert r["ramped"].running and r["ramped"].share == 100.0
    assert counts["treatment"]["labels"] >= 2 * 40
    # Prometheus: the arms' figures, from all workers' outcomes, and the share.
    assert f'streamsense_experiment_share{{experiment="{second}",model="fraud"}} 100.0' in r["metrics"]
    figure = (f'streamsense_experiment_figure{{arm="treatment",bound="value",experiment="{second}",'
              'figure="decline_rate"}')
    assert figure in r["metrics"]
    assert f'streamsense_experiment_outcomes_total{{arm="treatment",experiment="{second}",outcome="approve"}}' \
        in r["metrics"]
    assert not r["records"][topics.dead_letters]  # every transaction and label of the run was taken
