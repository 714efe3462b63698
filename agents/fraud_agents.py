"""Faust agents of the fraud path. Thin: a batch in, the processor, outputs emitted."""

from __future__ import annotations

import logging

import faust
from redis.exceptions import RedisError

from agents.batching import emit_all, run_batches
from agents.runtime import Runtime
from schemas.settings import Settings
from streams.app import Topology

log = logging.getLogger(__name__)


def register_fraud_agents(topology: Topology, settings: Settings, runtime: Runtime) -> None:
    app = topology.app

    @app.agent(topology.transactions, name="score-transactions")
    async def score_transactions(stream: faust.StreamT) -> None:
        await run_batches(app, stream, lambda batch: runtime.processor.on_transactions(batch), settings, "batch",
                          runtime.metrics)

    @app.agent(topology.fraud_labels, name="learn-labels")
    async def learn_labels(stream: faust.StreamT) -> None:
        await run_batches(app, stream, lambda batch: runtime.processor.on_labels(batch), settings, "label_join",
                          runtime.metrics)

    @app.agent(topology.learn, name="learn-fraud-model")
    async def learn_fraud_model(stream: faust.StreamT) -> None:
        await run_batches(app, stream, lambda batch: runtime.learner.on_examples(batch), settings, "learn",
                          runtime.metrics)

    @app.timer(interval=1.0)
    async def expire_unlabelled() -> None:
        try:
            await emit_all(app, await runtime.processor.expire_unlabelled())
        except RedisError as exc:
            log.warning("expiring unlabelled decisions failed, will retry: %s", exc)
