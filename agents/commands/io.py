"""`streamsense produce` and `streamsense tail`: files in, topics out, and back."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from aiokafka.errors import KafkaError

from agents import clients
from schemas.settings import Settings


async def started_producer(settings: Settings, command: str, nothing: str = "changed"):
    """A producer acknowledged by all replicas, connected before the command changes anything: an
    unreachable Kafka ends ``command`` with one line and nothing changed."""
    producer = clients.producer(settings, acks="all")
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise SystemExit(f"streamsense {command}: cannot reach Kafka ({exc}); nothing {nothing}") from None
    return producer


def default_key_field(settings: Settings, topic: str) -> str | None:
    """The contract's key: user_id on transactions, event_id on labels."""
    return {settings.topics.transactions: "user_id", settings.topics.fraud_labels: "event_id"}.get(topic)



def _number(text: str) -> object:
    """CSV cells that look like numbers become numbers.

    >>> _number("12"), _number("1.5"), _number("EUR")
    (12, 1.5, 'EUR')
    """
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def read_messages(path: Path) -> Iterator[tuple[bytes, dict | None]]:
    """Yield (value bytes, parsed record or None). JSON lines are sent as they are, even when
    malformed, so the worker (not this command) decides what is a dead letter."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                record = {k: _number(v) for k, v in row.items() if v != ""}
                yield json.dumps(record).encode(), record
        return
    with path.open("rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            yield line, record if isinstance(record, dict) else None


async def produce_file(settings: Settings, file: str, topic: str, *, key_field: str | None = None,
                       rate: float | None = None) -> int:
    key_field = key_field or default_key_field(settings, topic)
    producer = clients.producer(settings, acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        for value, record in read_messages(Path(file)):
            key = record.get(key_field) if (record and key_field) else None
            await producer.send(topic, value, key=str(key).encode() if key is not None else None)
            sent += 1
            if rate and sent / rate > time.monotonic() - started:
                await asyncio.sleep(sent / rate - (time.monotonic() - started))
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def tail_topic(settings: Settings, topic: str, *, from_beginning: bool = False, limit: int | None = None,
                     idle_timeout: float | None = None, out=sys.stdout) -> int:
    consumer = clients.consumer(settings, topic, enable_auto_commit=False,
                                auto_offset_reset="earliest" if from_beginning else "latest")
    await consumer.start()
    seen = 0
    last = time.monotonic()
    try:
        while limit is None or seen < limit:
            batches = await consumer.getmany(timeout_ms=500)
            for record in [r for records in batches.values() for r in records][:None if limit is None
                                                                                  else limit - seen]:
                out.write(record.value.decode("utf-8", errors="replace") + "\n")
                seen += 1
                last = time.monotonic()
            out.flush()
            if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                break
    finally:
        await consumer.stop()
    return seen
