"""Scoring requests that arrive together are decided together.

Deciding takes the processor's state lock and two Redis round trips. One request at a time,
concurrent requests queue on the lock and each pays both round trips in turn, so latency grows
with load. Instead, requests that arrive while a batch is being decided wait for the next batch,
which is decided with one load and one commit. Its outputs are handed to the producer in order
before the next batch is decided; the broker's acknowledgement is awaited on the side, and each
caller is answered once its decision is on fraud-decisions. Under light load a batch is one
request and nothing waits.

The batches run in their own task: a client that hangs up cancels only its own wait, never the
batch other requests are in. A request repeating an event_id already waiting shares its answer.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Sequence

from agents.messages import Emit
from schemas.records import Transaction

Decide = Callable[[Sequence[tuple[bytes, Transaction]], float], Awaitable[tuple[list, list[Emit]]]]
Send = Callable[[Sequence[Emit]], Awaitable[Awaitable]]  # hands outputs over; the result awaits the acks

Waiting = tuple[bytes, Transaction, float, list[asyncio.Future]]


def _settle(futures: list[asyncio.Future], answer: object) -> None:
    for future in futures:
        if future.done():  # the caller hung up
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)


class ScoreBatcher:
    def __init__(self, decide: Decide, send: Send, max_batch: int = 500) -> None:
        self.decide, self.send, self.max_batch = decide, send, max_batch
        self.waiting: dict[str, Waiting] = {}
        self.task: asyncio.Task | None = None
        self.acks: set[asyncio.Task] = set()

    async def submit(self, raw: bytes, tx: Transaction, started: float) -> bytes:
        """The decision's bytes once it is committed and published; raises what deciding raised."""
        future = asyncio.get_running_loop().create_future()
        if tx.event_id in self.waiting:
            self.waiting[tx.event_id][3].append(future)
        else:
            self.waiting[tx.event_id] = (raw, tx, started, [future])
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())
        return await future

    async def _run(self) -> None:
        while self.waiting:
            batch = [self.waiting.pop(event_id) for event_id in list(self.waiting)[: self.max_batch]]
            try:
                answers, emits = await self.decide([(raw, tx) for raw, tx, _, _ in batch],
                                                   min(started for _, _, started, _ in batch))
                acked = await self.send(emits)
            except Exception as exc:  # noqa: BLE001 - every waiting caller gets the error
                for *_, futures in batch:
                    _settle(futures, exc)
                continue
            task = asyncio.ensure_future(self._answer(batch, answers, acked))
            self.acks.add(task)  # a reference, so the task is not collected before it ends
            task.add_done_callback(self.acks.discard)

    @staticmethod
    async def _answer(batch: list[Waiting], answers: list, acked: Awaitable) -> None:
        try:
            await acked  # on fraud-decisions before any caller hears of it
        except Exception as exc:  # noqa: BLE001
            answers = [exc] * len(batch)
        for (*_, futures), answer in zip(batch, answers):
            _settle(futures, answer)
