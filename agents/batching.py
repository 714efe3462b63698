"""How an agent hands a batch to a processor and emits the result, without ever losing a message.

Faust acks every event of a ``take_events`` batch when the loop body ends, also when it raises.
So nothing may escape the body:

- Any exception while handling a batch is isolated to the messages that cause it: the batch is
  split in halves, each handled on its own, down to single messages. A message that still fails
  alone becomes a dead letter with the agent's stage and its error; every other message is
  decided. A message that fails only in company (with another message of its batch) is decided
  once the halves separate them. A transient failure (Redis, network, a commit race) is retried
  on the same batch instead, with backoff; one that persists dead-letters the batch. An agent
  may settle its dead letters (``settle``): the transaction path answers one whose decision was
  committed before the failure with that decision, and stores the others by input offset, so a
  redelivery gets the same single outcome.
- Outputs are sent and awaited before the body ends. A send the broker does not acknowledge is
  sent again with backoff; if it still fails, the process exits at once (``EXIT_UNSENT``)
  instead of stopping gracefully: a graceful stop acks the batch in hand (``take_events`` acks in
  a ``finally``) and commits it, which would drop its outputs. Its offsets stay uncommitted, so the
  batch is redelivered when the worker restarts; decisions already stored are re-emitted byte for
  byte (agents.transaction_path).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn

import faust
from redis.exceptions import RedisError

from agents import produce
from agents.messages import Emit, RawMessage, Transient, dead_letter
from schemas.settings import Settings

log = logging.getLogger(__name__)

BATCH_ATTEMPTS = 3
TRANSIENT = (RedisError, OSError, Transient)  # what retrying the same batch can cure
PRODUCE_ATTEMPTS = 5
EXIT_UNSENT = 75  # EX_TEMPFAIL: outputs the broker would not take; restart to redeliver the batch

Handle = Callable[[list[RawMessage]], Awaitable[list[Emit]]]
# What a batch's dead letters really are: an agent whose state records outcomes (the transaction
# path) may answer one with the decision it committed before failing, or record it so a
# redelivery gets the same one.
Settle = Callable[[list[tuple[RawMessage, Emit]]], Awaitable[list[Emit]]]


def raw_message(event: faust.EventT) -> RawMessage:
    m = event.message
    return RawMessage(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp, m.generation_id)


async def send_all(app: faust.App, emits: Sequence[Emit]) -> Awaitable[list]:
    """Hand every output to the producer, in order per partition; the result resolves once the
    broker has them all."""
    return asyncio.gather(*[future async for _, future in produce.hand_over(app, emits)])


async def unacknowledged(app: faust.App, emits: Sequence[Emit]) -> tuple[list[Emit], BaseException | None]:
    """Send ``emits`` in bulk (agents.produce); those the broker did not acknowledge (in order),
    and the last error."""
    handed, error = [], None
    try:
        async for part in produce.hand_over(app, emits):
            handed.append(part)
    except Exception as exc:  # noqa: BLE001 - whatever was not handed over is unsent
        error = exc
    results = await asyncio.gather(*(future for _, future in handed), return_exceptions=True)
    acknowledged: set[int] = set()
    for (positions, _), result in zip(handed, results, strict=True):
        if isinstance(result, BaseException):
            error = error or result
        else:
            acknowledged.update(positions)
    return [e for i, e in enumerate(emits) if i not in acknowledged], error


def exit_unsent(error: BaseException | None) -> NoReturn:
    """Stop the process without acking the batch in hand (see the module's docstring)."""
    log.critical("the broker did not take this batch's outputs after %d attempts (%s); exiting with %d so the "
                 "batch is redelivered after a restart", PRODUCE_ATTEMPTS, error, EXIT_UNSENT)
    logging.shutdown()
    os._exit(EXIT_UNSENT)


async def emit_all(app: faust.App, emits: Sequence[Emit],
                   stop: Callable[[BaseException | None], NoReturn] = exit_unsent) -> None:
    """Send every output and wait until the broker has them, before the batch is acked; what it does
    not acknowledge is sent again with backoff, and after ``PRODUCE_ATTEMPTS`` the worker stops."""
    unsent: Sequence[Emit] = emits
    for attempt in range(1, PRODUCE_ATTEMPTS + 1):
        unsent, error = await unacknowledged(app, unsent)
        if not unsent:
            return
        log.warning("%d outputs not acknowledged (attempt %d/%d): %s", len(unsent), attempt, PRODUCE_ATTEMPTS,
                    error)
        if attempt < PRODUCE_ATTEMPTS:
            await asyncio.sleep(0.1 * 2 ** attempt)
    stop(error)


async def guarded(handle: Handle, messages: list[RawMessage], settings: Settings, stage: str,
                  metrics=None, settle: Settle | None = None) -> list[Emit]:
    """``handle``'s outputs for the batch; never raises an Exception (see the module's docstring).

    A transient failure is retried; if it persists, the dependency is down, not a message at
    fault, so no smaller part would fare better: every message becomes a dead letter (and
    bisecting would cost a timeout per part)."""
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            return await handle(messages)
        except TRANSIENT as exc:
            log.warning("%s batch of %d failed (attempt %d/%d): %s", stage, len(messages), attempt,
                        BATCH_ATTEMPTS, exc)
            if attempt == BATCH_ATTEMPTS:
                return await settled(settle, [(m, dead_letter(settings, m, stage, exc, time.time(), metrics))
                                              for m in messages])
            await asyncio.sleep(0.2 * 2 ** attempt)
        except Exception as exc:  # noqa: BLE001 - the isolation boundary: no exception may ack-and-lose
            if len(messages) == 1:
                log.error("%s failed alone at %s", stage, messages[0].source, exc_info=exc)
                return await settled(settle, [(messages[0], dead_letter(settings, messages[0], stage, exc,
                                                                         time.time(), metrics))])
            log.warning("%s batch of %d failed (%s: %s); handling each half on its own", stage, len(messages),
                        type(exc).__name__, exc)
            half = len(messages) // 2
            return (await guarded(handle, messages[:half], settings, stage, metrics, settle)
                    + await guarded(handle, messages[half:], settings, stage, metrics, settle))
    raise AssertionError("unreachable")


async def settled(settle: Settle | None, letters: list[tuple[RawMessage, Emit]]) -> list[Emit]:
    """``letters`` as ``settle`` makes them, one at a time (a failure path: a round trip each is
    cheap here); a letter it cannot settle goes out as it is."""
    if settle is None:
        return [letter for _, letter in letters]
    out = []
    for msg, letter in letters:
        try:
            out.extend(await settle([(msg, letter)]))
        except Exception as exc:  # noqa: BLE001 - still the isolation boundary: the letter must go out
            log.warning("dead letter of %s not recorded (a redelivery may decide it): %s: %s", msg.source,
                        type(exc).__name__, exc)
            out.append(letter)
    return out


async def run_batches(app: faust.App, stream: faust.StreamT, handle: Handle, settings: Settings, stage: str,
                      metrics=None, settle: Settle | None = None) -> None:
    """The body of every agent: batches of raw messages through ``handle``, outputs emitted."""
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        await emit_all(app, await guarded(handle, [raw_message(e) for e in events], settings, stage, metrics,
                                          settle))
