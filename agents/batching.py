"""How an agent hands a batch to a processor and emits the result, without ever losing a message.

Faust acks every event of a ``take_events`` batch when the loop body ends, also when it raises.
So nothing may escape the body: a batch that keeps failing is dead-lettered message by message,
with its stage and error, instead of being acked and lost. Outputs are sent and awaited before
the body ends, so a crash before the ack redelivers the batch rather than dropping its outputs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Sequence

import faust
from redis.exceptions import RedisError

from agents.messages import Emit, RawMessage, dead_letter
from schemas.settings import Settings

log = logging.getLogger(__name__)

BATCH_ATTEMPTS = 3


def raw_message(event: faust.EventT) -> RawMessage:
    m = event.message
    return RawMessage(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)


async def send_all(app: faust.App, emits: Sequence[Emit]) -> Awaitable[list]:
    """Hand every output to the producer, in order; the result resolves once the broker has them all."""
    pending = [await app.producer.send(e.topic, e.key, e.value, None, None, None) for e in emits]
    return asyncio.gather(*pending)


async def emit_all(app: faust.App, emits: Sequence[Emit]) -> None:
    """Send every output and wait until the broker has them, before the batch is acked."""
    await (await send_all(app, emits))


async def guarded(handle: Callable[[list[RawMessage]], Awaitable[list[Emit]]], messages: list[RawMessage],
                  settings: Settings, stage: str, metrics=None) -> list[Emit]:
    """Run ``handle`` on a batch, retrying; after the last attempt every message becomes a dead letter."""
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            return await handle(messages)
        except (RedisError, RuntimeError, OSError) as exc:
            log.warning("%s batch of %d failed (attempt %d/%d): %s", stage, len(messages), attempt,
                        BATCH_ATTEMPTS, exc)
            if attempt == BATCH_ATTEMPTS:
                return [dead_letter(settings, m, stage, exc, time.time(), metrics) for m in messages]
            await asyncio.sleep(0.2 * 2 ** attempt)
    raise AssertionError("unreachable")


async def run_batches(app: faust.App, stream: faust.StreamT, handle, settings: Settings, stage: str,
                      metrics=None) -> None:
    """The body of every agent: batches of raw messages through ``handle``, outputs emitted."""
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        await emit_all(app, await guarded(handle, [raw_message(e) for e in events], settings, stage, metrics))
