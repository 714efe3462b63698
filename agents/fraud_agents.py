"""Faust agents of the fraud path. Thin: take a batch, hand it to the processor, emit, go on.

Faust acks every event of a ``take_events`` batch when the loop body ends, also when it raises.
So nothing may escape the body: a batch that keeps failing is dead-lettered message by message,
with its stage and error, instead of being acked and lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Sequence

import faust
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agents.fraud_processor import Emit, FraudProcessor, RawMessage
from agents.fraud_store import FraudStore
from agents.redis_keys import RedisKeys
from online_models.engine import FraudEngine
from schemas.records import DeadLetter
from schemas.settings import Settings
from streams.app import Topology

log = logging.getLogger(__name__)

BATCH_ATTEMPTS = 3


class FraudRuntime(faust.Service):
    """Owns the Redis client and the processor; created and closed with the worker."""

    def __init__(self, settings: Settings, engine: FraudEngine, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.engine = engine
        self.redis: Redis | None = None
        self.processor: FraudProcessor | None = None

    async def on_start(self) -> None:
        self.redis = Redis.from_url(self.settings.redis_url.get_secret_value(), socket_timeout=2.0,
                                    socket_connect_timeout=2.0, health_check_interval=10)
        store = FraudStore(self.redis, RedisKeys.from_settings(self.settings), self.settings)
        self.processor = FraudProcessor(self.settings, self.engine, store)

    async def on_stop(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def raw_message(event: faust.EventT) -> RawMessage:
    m = event.message
    return RawMessage(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)


async def emit_all(app: faust.App, emits: Sequence[Emit]) -> None:
    """Send every output and wait until the broker has them, before the batch is acked."""
    pending = [await app.producer.send(e.topic, e.key, e.value, None, None, None) for e in emits]
    await asyncio.gather(*pending)


async def guarded(handle: Callable[[list[RawMessage]], Awaitable[list[Emit]]], messages: list[RawMessage],
                  settings: Settings, stage: str) -> list[Emit]:
    """Run ``handle`` on a batch, retrying; after the last attempt every message becomes a dead letter."""
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            return await handle(messages)
        except (RedisError, RuntimeError, OSError) as exc:
            log.warning("%s batch of %d failed (attempt %d/%d): %s", stage, len(messages), attempt,
                        BATCH_ATTEMPTS, exc)
            if attempt == BATCH_ATTEMPTS:
                return [Emit(settings.topics.dead_letters, m.key, DeadLetter.from_raw(
                    m.value, key=m.key, source_topic=m.topic, partition=m.partition, offset=m.offset, stage=stage,
                    error=exc, cap=settings.dead_letter_raw_bytes, failed_at=time.time(),
                ).to_json()) for m in messages]
            await asyncio.sleep(0.2 * 2 ** attempt)
    raise AssertionError("unreachable")


def register_fraud_agents(topology: Topology, settings: Settings, runtime: FraudRuntime) -> None:
    app = topology.app

    @app.agent(topology.transactions, name="score-transactions")
    async def score_transactions(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            batch = [raw_message(e) for e in events]
            await emit_all(app, await guarded(runtime.processor.on_transactions, batch, settings, "batch"))

    @app.agent(topology.fraud_labels, name="learn-labels")
    async def learn_labels(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            batch = [raw_message(e) for e in events]
            await emit_all(app, await guarded(runtime.processor.on_labels, batch, settings, "label_join"))

    @app.timer(interval=1.0)
    async def expire_unlabelled() -> None:
        try:
            await runtime.processor.expire_unlabelled()
        except RedisError as exc:
            log.warning("expiring unlabelled decisions failed, will retry: %s", exc)
