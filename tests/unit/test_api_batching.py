"""The API's score batcher: requests arriving together share a batch; a durable batch is answered
once its outputs are handed over and leaves the unpublished set once they are acknowledged, any
other batch is answered only after the acknowledgement; a repeated event_id shares the answer, a
failure reaches every caller of that batch and not the next, and a caller hanging up harms nobody."""

from __future__ import annotations

import asyncio

import pytest

from agents.api.batching import ScoreBatcher
from agents.messages import Emit
from schemas.records import Transaction


def tx(event_id: str) -> Transaction:
    return Transaction(event_id=event_id, ts=0.0, user_id="u", merchant_id="m", amount=1.0, currency="EUR",
                       country="FR", channel="app")


class Recorder:
    def __init__(self, fail_on: str | None = None, durable: bool = True, ack_error: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.acked: list[str] = []
        self.published: list[str] = []
        self.fail_on, self.durable, self.ack_error = fail_on, durable, ack_error
        self.release = asyncio.Event()

    def batcher(self) -> ScoreBatcher:
        return ScoreBatcher(self.decide, self.send, self.mark_published)

    async def decide(self, items, started):
        ids = [t.event_id for _, t, _ in items]
        self.batches.append(ids)
        await asyncio.sleep(0.01)  # a Redis round trip: others arrive meanwhile
        if self.fail_on in ids:
            raise RuntimeError("commit kept conflicting")
        return [f"decision {i}".encode() for i in ids], [Emit("decisions", i.encode(), b"") for i in ids], self.durable

    async def send(self, emits):
        async def acked():
            await self.release.wait()
            if self.ack_error:
                raise self.ack_error
            self.acked.extend(e.key.decode() for e in emits)
        return asyncio.ensure_future(acked())

    async def mark_published(self, event_ids):
        self.published.extend(event_ids)


async def test_a_durable_batch_is_answered_before_the_ack_and_marked_published_after_it() -> None:
    rec = Recorder()
    batcher = rec.batcher()
    calls = [asyncio.ensure_future(batcher.submit(b"", tx(f"e{i}"), 0.0)) for i in range(5)]
    answers = await asyncio.wait_for(asyncio.gather(*calls), 2.0)  # the broker has acknowledged nothing
    assert answers == [f"decision e{i}".encode() for i in range(5)]
    assert rec.batches == [["e0", "e1", "e2", "e3", "e4"]]
    assert rec.acked == [] and rec.published == []  # answered; the broker has not acknowledged yet
    rec.release.set()
    await asyncio.gather(*batcher.acks)
    assert rec.acked == rec.published == [f"e{i}" for i in range(5)]


async def test_a_degraded_batch_is_answered_only_after_the_ack() -> None:
    rec = Recorder(durable=False)
    batcher = rec.batcher()
    calls = [asyncio.ensure_future(batcher.submit(b"", tx(f"e{i}"), 0.0)) for i in range(3)]
    await asyncio.sleep(0.05)
    assert rec.batches == [["e0", "e1", "e2"]] and not any(c.done() for c in calls)
    rec.release.set()
    assert await asyncio.gather(*calls) == [f"decision e{i}".encode() for i in range(3)]
    assert rec.acked == ["e0", "e1", "e2"] and rec.published == []  # nothing of it in the unpublished set


async def test_an_ack_that_fails_leaves_a_durable_batch_unpublished_and_fails_a_degraded_one() -> None:
    durable = Recorder(ack_error=RuntimeError("broker gone"))
    durable.release.set()
    batcher = durable.batcher()
    assert await batcher.submit(b"", tx("kept"), 0.0) == b"decision kept"
    await asyncio.gather(*batcher.acks)
    assert durable.published == []  # stays in the unpublished set: the sweep sends it again

    degraded = Recorder(durable=False, ack_error=RuntimeError("broker gone"))
    degraded.release.set()
    with pytest.raises(RuntimeError, match="broker gone"):
        await degraded.batcher().submit(b"", tx("lost"), 0.0)


async def test_a_repeated_event_id_shares_the_answer_and_later_arrivals_form_the_next_batch() -> None:
    rec = Recorder()
    rec.release.set()
    batcher = rec.batcher()
    first = asyncio.ensure_future(batcher.submit(b"", tx("a"), 0.0))
    await asyncio.sleep(0)  # the first batch starts deciding
    later = [asyncio.ensure_future(batcher.submit(b"", tx(e), 0.0)) for e in ("b", "b", "c")]
    assert await asyncio.gather(first, *later) == [b"decision a", b"decision b", b"decision b", b"decision c"]
    assert rec.batches == [["a"], ["b", "c"]]


async def test_a_failed_batch_fails_its_callers_only() -> None:
    rec = Recorder(fail_on="bad")
    rec.release.set()
    batcher = rec.batcher()
    bad = asyncio.ensure_future(batcher.submit(b"", tx("bad"), 0.0))
    await asyncio.sleep(0)
    good = asyncio.ensure_future(batcher.submit(b"", tx("good"), 0.0))
    with pytest.raises(RuntimeError, match="conflicting"):
        await bad
    assert await good == b"decision good"


async def test_a_caller_hanging_up_does_not_cancel_the_batch() -> None:
    rec = Recorder()
    rec.release.set()
    batcher = rec.batcher()
    gone = asyncio.ensure_future(batcher.submit(b"", tx("gone"), 0.0))
    stays = asyncio.ensure_future(batcher.submit(b"", tx("stays"), 0.0))
    await asyncio.sleep(0)
    gone.cancel()
    assert await stays == b"decision stays"
    await asyncio.gather(*batcher.acks)
    assert rec.acked == rec.published == ["gone", "stays"]  # its decision was still published
