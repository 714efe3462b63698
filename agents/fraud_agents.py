"""Faust agents of the fraud path. Thin: a batch in, the processor, its outcome emitted."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import faust
from redis.exceptions import RedisError

from agents.batching import emit_all, run_batches
from agents.fraud_outcome import FraudOutcome
from agents.messages import Emit, RawMessage
from agents.runtime import Runtime
from agents.timers import resilient_timer
from schemas.settings import Settings
from streams.app import Topology

log = logging.getLogger(__name__)
PARKED_EXPIRY_INTERVAL_S = 60.0


def register_fraud_agents(topology: Topology, settings: Settings, runtime: Runtime) -> None:
    app = topology.app

    def emitting(handle: Callable[[list[RawMessage]], Awaitable[FraudOutcome]]
                 ) -> Callable[[list[RawMessage]], Awaitable[list[Emit]]]:
        async def run(batch: list[RawMessage]) -> list[Emit]:
            return (await handle(batch)).to_emits(settings, runtime.metrics)
        return run

    @app.agent(topology.transactions, name="score-transactions")
    async def score_transactions(stream: faust.StreamT) -> None:
        await run_batches(app, stream, runtime.after_restore(emitting(
                              lambda batch: runtime.processor.transactions.on_transactions(batch))),
                          settings, "batch", runtime.metrics,
                          lambda letters: runtime.processor.transactions.settle(letters))

    @app.agent(topology.fraud_labels, name="learn-labels")
    async def learn_labels(stream: faust.StreamT) -> None:
        await run_batches(app, stream, emitting(lambda batch: runtime.processor.labels.on_labels(batch)),
                          settings, "label_join", runtime.metrics)

    @app.agent(topology.learn, name="learn-fraud-model")
    async def learn_fraud_model(stream: faust.StreamT) -> None:
        await run_batches(app, stream, runtime.after_restore(emitting(lambda batch: runtime.learn(batch))), settings,
                          "learn", runtime.metrics)

    @app.on_partitions_assigned.connect
    async def own_partitions(sender: faust.App, assigned: object, **kwargs: object) -> None:
        try:
            await runtime.claim_partitions()  # before the new assignment's first batch
        except (RedisError, OSError) as exc:  # an exception here would crash the worker; retried in 2 s
            log.warning("could not claim the assigned partitions yet: %s", exc)

    @resilient_timer(app, PARKED_EXPIRY_INTERVAL_S, "dead-lettering labels whose transaction never came")
    async def expire_parked_labels() -> None:
        outcome = await runtime.processor.labels.expire_parked()
        await emit_all(app, outcome.to_emits(settings, runtime.metrics))

    @resilient_timer(app, 1.0, "expiring unlabelled decisions")
    async def expire_unlabelled() -> None:
        outcome = await runtime.processor.expire_unlabelled()
        await emit_all(app, outcome.to_emits(settings, runtime.metrics))

    @resilient_timer(app, settings.api_publish_grace_s, "publishing HTTP decisions the broker never acknowledged")
    async def publish_unacknowledged() -> None:
        emits, event_ids = await runtime.processor.transactions.unpublished_decisions()
        await emit_all(app, emits)
        await runtime.processor.store.mark_published(event_ids)
