"""No second implementation: the evaluate command and the worker give the same scores to the same events."""

from __future__ import annotations

import itertools
import json
import uuid

import pytest
from redis.asyncio import Redis

from agents.fraud_processor import FraudProcessor
from agents.stores.fraud import FraudStore
from agents.learner import Learner
from agents.messages import RawMessage
from agents.stores.keys import RedisKeys
from agents.sim.traffic import TrafficSimulator
from online_models.engine import FraudEngine
from online_models.evaluation import Event, LabelDelay, evaluate_binary
from online_models import evaluation
from schemas.records import Transaction
from schemas.settings import SecretStr, Settings

pytestmark = pytest.mark.integration
START = 1_700_000_000.0


async def test_worker_and_evaluate_score_the_same_stream_identically(redis_url: str, monkeypatch) -> None:
    settings = Settings(redis_url=SecretStr(redis_url), redis_key_prefix=f"ss:e:{uuid.uuid4().hex[:6]}",
                        max_past_s=1e10, max_future_s=1e10)
    sim = [ev for ev in itertools.islice(TrafficSimulator(seed=3, start_ts=START, users=60).events(), 600)
           if ev.kind == "transaction"]

    redis = Redis.from_url(redis_url)
    engine = FraudEngine(settings)  # one worker: its learner trains what it serves (published at once here)
    worker = FraudProcessor(settings, engine, FraudStore(redis, RedisKeys.from_settings(settings), settings),
                            clock=lambda: START)
    learner = Learner(settings, engine, worker.metrics)
    worker_scores = []
    for offset, ev in enumerate(sim):
        emits = await worker.on_transactions([RawMessage("transactions", 0, offset, None,
                                                         json.dumps(ev.payload).encode())])
        worker_scores.append(next(json.loads(e.value)["score"] for e in emits if e.topic == "fraud-decisions"))
        await learner.on_examples([RawMessage(settings.learn_topic, 0, offset, e.key, e.value)
                                   for e in emits if e.topic == settings.learn_topic])
        label = {"event_id": ev.payload["event_id"], "is_fraud": bool(ev.is_fraud), "ts": ev.ts}
        (example,) = await worker.on_labels([RawMessage("fraud-labels", 0, offset, None, json.dumps(label).encode())])
        await learner.on_examples([RawMessage(settings.learn_topic, 0, offset, example.key, example.value)])
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
