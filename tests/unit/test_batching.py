"""The isolation boundary of every agent (agents.batching): whatever a batch raises, each message
ends as its outputs or one dead letter; outputs the broker will not take stop the worker unacked."""

from __future__ import annotations

import asyncio
import json

import pytest
from faust.types import TP

from agents import batching
from agents.messages import Emit, RawMessage, Transient
from schemas.settings import Settings

SETTINGS = Settings()
pause = asyncio.sleep  # the real one: tests replace the backoff's sleep


def messages(n: int) -> list[RawMessage]:
    return [RawMessage("transactions", 0, i, b"k", f"m{i}".encode()) for i in range(n)]


def handler(fails):
    """A processor that emits one output per message and raises ``fails(batch)`` when it is not None."""
    calls = []

    async def handle(batch: list[RawMessage]) -> list[Emit]:
        calls.append([m.offset for m in batch])
        error = fails(batch)
        if error is not None:
            raise error
        return [Emit("out", None, m.value) for m in batch]
    return handle, calls


def outcome(emits: list[Emit]) -> tuple[list[bytes], dict[int, tuple[str, str]]]:
    letters = [json.loads(e.value) for e in emits if e.topic == SETTINGS.topics.dead_letters]
    return ([e.value for e in emits if e.topic == "out"],
            {d["offset"]: (d["stage"], d["error_code"]) for d in letters})


@pytest.mark.parametrize("kind", [ValueError, KeyError, TypeError, ZeroDivisionError, UnicodeError, LookupError,
                                  RuntimeError])
async def test_any_exception_is_isolated_to_the_message_that_raises_it(kind) -> None:
    handle, _ = handler(lambda batch: kind("bad") if any(m.offset in (3, 11) for m in batch) else None)
    decided, letters = outcome(await batching.guarded(handle, messages(16), SETTINGS, "batch"))
    assert decided == [f"m{i}".encode() for i in range(16) if i not in (3, 11)]
    assert letters == {3: ("batch", kind.__name__), 11: ("batch", kind.__name__)}


async def test_dead_letters_are_settled_one_by_one_and_one_that_cannot_be_goes_out_as_it_is() -> None:
    handle, _ = handler(lambda batch: KeyError("bad") if any(m.offset in (1, 2) for m in batch) else None)

    async def settle(letters):  # offset 1 was decided before it failed; settling offset 2 itself fails
        (msg, letter), = letters
        if msg.offset == 2:
            raise ZeroDivisionError("while settling")
        return [Emit("out", None, b"decided m1")]

    decided, letters = outcome(await batching.guarded(handle, messages(4), SETTINGS, "batch", settle=settle))
    assert decided == [b"m0", b"decided m1", b"m3"] and letters == {2: ("batch", "KeyError")}


async def test_messages_that_fail_only_together_are_each_decided_once_apart() -> None:
    # 2 and 9 cannot be handled in one batch (think: two writers of one key); either alone is fine.
    handle, calls = handler(lambda batch: ValueError("together") if {2, 9} <= {m.offset for m in batch} else None)
    decided, letters = outcome(await batching.guarded(handle, messages(12), SETTINGS, "batch"))
    assert decided == [f"m{i}".encode() for i in range(12)] and letters == {}
    assert calls == [list(range(12)), list(range(6)), list(range(6, 12))]


@pytest.mark.parametrize("error", [ConnectionError("redis away"), Transient("commit raced another worker")])
async def test_a_transient_failure_is_retried_on_the_whole_batch(monkeypatch, error) -> None:
    monkeypatch.setattr(batching.asyncio, "sleep", lambda s: pause(0))
    failures = iter([error])
    handle, calls = handler(lambda batch: next(failures, None))
    decided, letters = outcome(await batching.guarded(handle, messages(4), SETTINGS, "label_join"))
    assert len(decided) == 4 and letters == {} and calls == [[0, 1, 2, 3]] * 2


async def test_a_failure_that_never_clears_dead_letters_every_message_with_its_stage(monkeypatch) -> None:
    monkeypatch.setattr(batching.asyncio, "sleep", lambda s: pause(0))
    handle, _ = handler(lambda batch: ConnectionError("redis away"))
    decided, letters = outcome(await batching.guarded(handle, messages(5), SETTINGS, "label_join"))
    assert decided == [] and letters == {i: ("label_join", "ConnectionError") for i in range(5)}


class Batch:
    """aiokafka's BatchBuilder as agents.produce uses it: full after ``room`` records."""

    def __init__(self, room: int) -> None:
        self.room, self.records, self.closed = room, [], False

    def append(self, *, key, value, timestamp):
        if self.closed or len(self.records) == self.room:
            self.closed = True
            return None
        self.records.append(value)
        return object()

    def close(self) -> None:
        self.closed = True


class Kafka:
    """The aiokafka producer underneath Faust's: takes a batch when ``accept(attempt, batch's values)``
    says so (attempts counted per value); the broker's answer is one future per batch."""

    def __init__(self, accept, room: int) -> None:
        self.accept, self.room, self.sent, self.attempts, self.batches = accept, room, [], {}, []

    async def partitions_for(self, topic):
        return {0, 1, 2, 3}

    def create_batch(self) -> Batch:
        return Batch(self.room)

    async def send_batch(self, batch, topic, *, partition):
        assert batch.closed
        self.batches.append((topic, partition, list(batch.records)))
        attempt = max(self.attempts.setdefault(v, 0) + 1 for v in batch.records)
        for v in batch.records:
            self.attempts[v] += 1
        future = asyncio.get_running_loop().create_future()
        if self.accept(attempt, batch.records):
            self.sent.extend(batch.records)
            future.set_result(None)
        else:
            future.set_exception(ConnectionError("broker away"))
        return future


class Producer:
    """Faust's producer: partitions by the key's first byte; the aiokafka one underneath."""

    def __init__(self, accept, room: int = 100) -> None:
        self.kafka = Kafka(accept, room)

    def key_partition(self, topic, key):
        return TP(topic, key[0] % 4)

    def _ensure_producer(self) -> Kafka:
        return self.kafka


class App:
    def __init__(self, producer: Producer) -> None:
        self.producer = producer


class Stopped(BaseException):
    pass


def stop(error):
    raise Stopped(error)


async def test_outputs_the_broker_did_not_take_are_sent_again_and_only_those(monkeypatch) -> None:
    monkeypatch.setattr(batching.asyncio, "sleep", lambda s: pause(0))
    # a, b and c go to partitions 1, 2 and 3 (their keys): b's batch fails twice
    producer = Producer(lambda attempt, values: values != [b"b"] or attempt == 3)
    await batching.emit_all(App(producer), [Emit("t", v, v) for v in (b"a", b"b", b"c")], stop=stop)
    assert producer.kafka.sent == [b"a", b"c", b"b"] and producer.kafka.attempts == {b"a": 1, b"b": 3, b"c": 1}


async def test_outputs_the_broker_never_takes_stop_the_worker_before_the_batch_is_acked(monkeypatch) -> None:
    waits = []
    monkeypatch.setattr(batching.asyncio, "sleep", lambda s: waits.append(s) or pause(0))
    producer = Producer(lambda attempt, values: False)
    with pytest.raises(Stopped):
        await batching.emit_all(App(producer), [Emit("t", b"a", b"a")], stop=stop)
    assert producer.kafka.attempts[b"a"] == batching.PRODUCE_ATTEMPTS and producer.kafka.sent == []
    assert waits == sorted(waits) and len(waits) == batching.PRODUCE_ATTEMPTS - 1  # backing off


async def test_outputs_go_in_one_batch_per_partition_in_order_split_only_when_a_batch_is_full() -> None:
    producer = Producer(lambda attempt, values: True, room=3)
    emits = [Emit("t", bytes([k]), bytes([k, i])) for i, k in enumerate([1, 2, 1, 1, 5, 1, 2, 1])]
    await batching.emit_all(App(producer), emits, stop=stop)
    # partition 1 (keys 1 and 5): 6 records in order, in batches of at most 3; partition 2: one batch
    assert producer.kafka.batches == [("t", 1, [b"\x01\x00", b"\x01\x02", b"\x01\x03"]),
                                      ("t", 1, [b"\x05\x04", b"\x01\x05", b"\x01\x07"]),
                                      ("t", 2, [b"\x02\x01", b"\x02\x06"])]


async def test_a_batch_the_broker_refuses_is_sent_again_alone(monkeypatch) -> None:
    monkeypatch.setattr(batching.asyncio, "sleep", lambda s: pause(0))
    producer = Producer(lambda attempt, values: b"\x02\x01" not in values or attempt == 2, room=2)
    emits = [Emit("t", bytes([k]), bytes([k, i])) for i, k in enumerate([1, 2, 2, 2, 1])]
    await batching.emit_all(App(producer), emits, stop=stop)
    assert producer.kafka.batches[-1] == ("t", 2, [b"\x02\x01", b"\x02\x02"])  # only the refused batch again
    assert sorted(producer.kafka.sent) == sorted(e.value for e in emits) and len(producer.kafka.batches) == 4
