"""The API's score batcher: requests arriving together share a batch, every caller gets its own
answer only after the outputs are acknowledged, a repeated event_id shares the answer, a failure
reaches every caller of that batch and not the next, and a caller hanging up harms nobody."""

from __future__ import annotations

import asyncio

import pytest

from agents.api_batching import ScoreBatcher
from agents.messages import Emit
from schemas.records import Transaction


def tx(event_id: str) -> Transaction:
    return Transaction(event_id=event_id, ts=0.0, user_id="u", merchant_id="m", amount=1.0, currency="EUR",
                       country="FR", channel="app")


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.acked: list[str] = []
        self.fail_on = fail_on
        self.release = asyncio.Event()

    async def decide(self, items, started):
        ids = [t.event_id for _, t in items]
        self.batches.append(ids)
        await asyncio.sleep(0.01)  # a Redis round trip: others arrive meanwhile
        if self.fail_on in ids:
            raise RuntimeError("commit kept conflicting")
        return [f"decision {i}".encode() for i in ids], [Emit("decisions", i.encode(), b"") for i in ids]

    async def send(self, emits):
        async def acked():
            await self.release.wait()
            self.acked.extend(e.key.decode() for e in emits)
        return asyncio.ensure_future(acked())


async def test_requests_arriving_together_share_a_batch_and_wait_for_the_acks() -> None:
    rec = Recorder()
    batcher = ScoreBatcher(rec.decide, rec.send)
    calls = [asyncio.ensure_future(batcher.submit(b"", tx(f"e{i}"), 0.0)) for i in range(5)]
    await asyncio.sleep(0.05)
    assert rec.batches == [["e0", "e1", "e2", "e3", "e4"]] and not any(c.done() for c in calls)
    rec.release.set()
    assert await asyncio.gather(*calls) == [f"decision e{i}".encode() for i in range(5)]
    assert rec.acked == [f"e{i}" for i in range(5)]


async def test_a_repeated_event_id_shares_the_answer_and_later_arrivals_form_the_next_batch() -> None:
    rec = Recorder()
    rec.release.set()
    batcher = ScoreBatcher(rec.decide, rec.send)
    first = asyncio.ensure_future(batcher.submit(b"", tx("a"), 0.0))
    await asyncio.sleep(0)  # the first batch starts deciding
    later = [asyncio.ensure_future(batcher.submit(b"", tx(e), 0.0)) for e in ("b", "b", "c")]
    assert await asyncio.gather(first, *later) == [b"decision a", b"decision b", b"decision b", b"decision c"]
    assert rec.batches == [["a"], ["b", "c"]]


async def test_a_failed_batch_fails_its_callers_only() -> None:
    rec = Recorder(fail_on="bad")
    rec.release.set()
    batcher = ScoreBatcher(rec.decide, rec.send)
    bad = asyncio.ensure_future(batcher.submit(b"", tx("bad"), 0.0))
    await asyncio.sleep(0)
    good = asyncio.ensure_future(batcher.submit(b"", tx("good"), 0.0))
    with pytest.raises(RuntimeError, match="conflicting"):
        await bad
    assert await good == b"decision good"


async def test_a_caller_hanging_up_does_not_cancel_the_batch() -> None:
    rec = Recorder()
    rec.release.set()
    batcher = ScoreBatcher(rec.decide, rec.send)
    gone = asyncio.ensure_future(batcher.submit(b"", tx("gone"), 0.0))
    stays = asyncio.ensure_future(batcher.submit(b"", tx("stays"), 0.0))
    await asyncio.sleep(0)
    gone.cancel()
    assert await stays == b"decision stays"
    assert rec.acked == ["gone", "stays"]  # its decision was still published
