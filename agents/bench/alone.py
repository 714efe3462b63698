"""The processors alone: the batches a worker would take, handed straight to the fraud or the
recommendation processor in the benchmark's own process, against the same Redis (no Faust, no
Kafka). What Faust adds is the difference between this figure and the worker's.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from redis.asyncio import Redis

from agents.bench.io import Message
from agents.clients import redis_client
from agents.fraud_processor import FraudProcessor
from agents.messages import RawMessage
from agents.reco_processor import RecoProcessor
from schemas.settings import Settings

BATCH = 500
COUNTED = {"fraud": ("transactions",), "reco": ("interactions", "reco_requests")}  # as the worker's figure


def _handlers(scenario: str, settings: Settings, redis: Redis) -> dict:
    if scenario == "fraud":
        fraud = FraudProcessor.on_redis(redis, settings)
        return {"transactions": fraud.transactions.on_transactions, "fraud_labels": fraud.labels.on_labels}
    reco = RecoProcessor.on_redis(redis, settings)
    return {"interactions": reco.on_interactions, "reco_requests": reco.on_requests}


async def run_alone(scenario: str, settings: Settings, messages: list[Message]) -> tuple[int, float, float]:
    """(events counted, wall seconds, CPU seconds of this process) for ``messages``: each topic's
    messages in batches of up to ``BATCH``, the topics taking turns (a worker's agents take
    batches from each topic side by side)."""
    redis = redis_client(settings)
    handlers = _handlers(scenario, settings, redis)
    by_topic: dict[str, list[RawMessage]] = {}
    for i, (attr, key, value) in enumerate(messages):
        by_topic.setdefault(attr, []).append(RawMessage(getattr(settings.topics, attr), 0, i, key, value, None))
    rounds = itertools.zip_longest(*([(attr, ms[i:i + BATCH]) for i in range(0, len(ms), BATCH)]
                                     for attr, ms in by_topic.items()))
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for batches in rounds:
            for attr, batch in filter(None, batches):
                await handlers[attr](batch)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await redis.aclose()
    return sum(1 for attr, _, _ in messages if attr in COUNTED[scenario]), wall, cpu


def alone(scenario: str, settings: Settings, messages: list[Message]) -> tuple[int, float, float]:
    return asyncio.run(run_alone(scenario, settings, messages))
