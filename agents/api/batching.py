"""Scoring requests that arrive together are decided together.

Deciding takes the processor's state lock and two Redis round trips. One request at a time,
concurrent requests queue on the lock and each pays both round trips in turn, so latency grows
with load. Instead, requests that arrive while a batch is being decided wait for the next batch,
which is decided with one load and one commit. Its outputs are handed to the producer in order
before the next batch is decided. Under light load a batch is one request and nothing waits.

When callers are answered: a durable batch (its decisions committed to Redis, each event_id in
the unpublished set in the same atomic write) is answered as soon as its outputs are handed to
the producer; once the broker acknowledges them the event_ids leave the unpublished set, and if
it never does (the worker dies, the broker fails) a sweep publishes the stored decisions again
(``FraudProcessor.unpublished_decisions``). Waiting for the acknowledgement put its own tail (p99
2-8 ms in the worker) into every answer (BENCHMARKS.md). A batch decided degraded, without Redis,
has no such record, so its callers are answered only once the broker has the decisions.

The batches run in their own task: a client that hangs up cancels only its own wait, never the
batch other requests are in. A request repeating an event_id already waiting shares its answer.
The queue is bounded where requests enter the API: at most ``api_max_pending`` are in progress
on a worker, and one more is answered 503 with ``Retry-After`` (agents.api.limits.Pending).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from agents.messages import Emit
from schemas.records import Transaction

log = logging.getLogger(__name__)

# (raw, tx, API client) triples and the arrival time -> (answers, outputs, durable)
Decide = Callable[[Sequence[tuple[bytes, Transaction, str | None]], float], Awaitable[tuple[list, list[Emit], bool]]]
Send = Callable[[Sequence[Emit]], Awaitable[Awaitable]]  # hands outputs over; the result awaits the acks
Published = Callable[[list[str]], Awaitable[None]]  # event_ids the broker has acknowledged

Waiting = tuple[bytes, Transaction, str | None, float, list[asyncio.Future]]


def _settle(futures: list[asyncio.Future], answer: object) -> None:
    for future in futures:
        if future.done():  # the caller hung up
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)


def _answer(batch: list[Waiting], answers: Sequence) -> None:
    for (*_, futures), answer in zip(batch, answers, strict=True):
        _settle(futures, answer)


class ScoreBatcher:
    def __init__(self, decide: Decide, send: Send, published: Published, max_batch: int = 500) -> None:
        self.decide, self.send, self.published, self.max_batch = decide, send, published, max_batch
        self.waiting: dict[tuple[str, str | None], Waiting] = {}  # by event_id and client: never shared across
        self.task: asyncio.Task | None = None
        self.acks: set[asyncio.Task] = set()

    async def submit(self, raw: bytes, tx: Transaction, started: float, client: str | None = None) -> bytes:
        """The decision's bytes once it is durable (see above); raises what deciding raised."""
        future = asyncio.get_running_loop().create_future()
        waiting = (tx.event_id, client)
        if waiting in self.waiting:
            self.waiting[waiting][4].append(future)
        else:
            self.waiting[waiting] = (raw, tx, client, started, [future])
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())
        return await future

    async def _run(self) -> None:
        while self.waiting:
            batch = [self.waiting.pop(waiting) for waiting in list(self.waiting)[: self.max_batch]]
            try:
                answers, emits, durable = await self.decide([(raw, tx, client) for raw, tx, client, _, _ in batch],
                                                            min(started for *_, started, _ in batch))
                acked = await self.send(emits)
            except Exception as exc:  # noqa: BLE001 - every waiting caller gets the error
                _answer(batch, [exc] * len(batch))
                continue
            if durable:
                _answer(batch, answers)
            task = asyncio.ensure_future(self._acknowledged(batch, answers, acked, durable))
            self.acks.add(task)  # a reference, so the task is not collected before it ends
            task.add_done_callback(self.acks.discard)

    async def _acknowledged(self, batch: list[Waiting], answers: list, acked: Awaitable, durable: bool) -> None:
        """Once the broker has the outputs: a durable batch leaves the unpublished set, the callers
        of any other batch are answered."""
        try:
            await acked
        except Exception as exc:  # noqa: BLE001
            if durable:
                log.warning("the broker did not acknowledge %d HTTP decisions (%s); they are published again "
                            "by the unpublished sweep", len(batch), exc)
            else:
                _answer(batch, [exc] * len(batch))
            return
        if not durable:
            _answer(batch, answers)
            return
        try:
            await self.published([tx.event_id for _, tx, *_ in batch])
        except Exception as exc:  # noqa: BLE001 - the sweep sends them again: a raw duplicate, not a loss
            log.warning("could not clear %d published HTTP decisions from the unpublished set: %s", len(batch), exc)
