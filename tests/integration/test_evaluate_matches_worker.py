"""No second implementation: the evaluate command and the worker give the same scores to the same events."""

from __future__ import annotations

import itertools
import json
import uuid

import pytest
from redis.asyncio import Redis

from agents.fraud_outcome import FraudOutcome
from agents.fraud_processor import FraudProcessor
from agents.learner import Learner
from agents.messages import RawMessage
from agents.sim.traffic import TrafficSimulator
from agents.stores.fraud import FraudStore
from agents.stores.keys import RedisKeys
from online_models import evaluation
from online_models.engine import FraudEngine
from online_models.evaluation import Event, LabelDelay, evaluate_binary
from schemas.records import Transaction
from schemas.settings import SecretStr, Settings

pytestmark = pytest.mark.integration
START = 1_700_000_000.0


async def test_worker_and_evaluate_score_the_same_stream_identically(redis_url: str, monkeypatch) -> None:
    settings = Settings(redis_url=SecretStr(redis_url), app_id=f"ss-e-{uuid.uuid4().hex[:6]}",
                        max_past_s=1e10, max_future_s=1e10)
    sim = [ev for ev in itertools.islice(TrafficSimulator(seed=3, start_ts=START, users=60).events(), 600)
           if ev.kind == "transaction"]

    redis = Redis.from_url(redis_url)
    # one worker: its learner trains what it serves (published at once here)
    engine = FraudEngine.from_settings(settings)
    worker = FraudProcessor(settings, engine, FraudStore(redis, RedisKeys.from_settings(settings), settings),
                            clock=lambda: START)
    learner = Learner(settings, engine, worker.metrics)
    worker_scores = []

    async def learn(outcome: FraudOutcome, offset: int) -> None:
        """Through the learn topic's bytes, as the worker's learner reads them."""
        await learner.on_examples([RawMessage(settings.learn_topic, 0, offset, e.key, e.value)
                                   for e in outcome.to_emits(settings, worker.metrics)
                                   if e.topic == settings.learn_topic])

    for offset, ev in enumerate(sim):
        raw = RawMessage("transactions", 0, offset, ev.key.encode(), json.dumps(ev.payload).encode())
        decided = await worker.transactions.on_transactions([raw])
        (decision,) = decided.decisions
        worker_scores.append(decision.score)
        await learn(decided, offset)
        label = {"event_id": ev.payload["event_id"], "is_fraud": bool(ev.is_fraud), "ts": ev.ts}
        labelled = await worker.labels.on_labels([RawMessage("fraud-labels", 0, offset, label["event_id"].encode(),
                                                             json.dumps(label).encode())])
        assert len(labelled.examples) == 1 and not labelled.refused
        await learn(labelled, offset)
    await redis.aclose()

    evaluated = []
    real_score = evaluation.DefaultFraud.score
    monkeypatch.setattr(evaluation.DefaultFraud, "score",
                        lambda self, i, e: evaluated.append(real_score(self, i, e)) or evaluated[-1])
    events = [Event(x={}, y=bool(ev.is_fraud), ts=ev.ts, tx=Transaction(**ev.payload)) for ev in sim]
    evaluate_binary(events, ["default"], settings, delay=LabelDelay.parse("none"))

    assert len(worker_scores) == len(evaluated) > 300
    assert sum(ev.is_fraud for ev in sim) > 0
    assert worker_scores == pytest.approx(evaluated, abs=1e-6)
