"""`streamsense produce` and `streamsense tail`: files in, topics out, and back."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from agents import clients
from agents.command_errors import EXIT_UNAVAILABLE, CommandError
from agents.commands.typed_rows import column_types, contract_for, message_key, typed_record
from schemas.contracts import Contract
from schemas.settings import Settings


async def started_producer(settings: Settings, nothing: str = "changed"):
    """A producer acknowledged by all replicas, connected before the command changes anything: an
    unreachable Kafka ends the command with one line and nothing changed."""
    producer = clients.producer(settings, acks="all")
    try:
        await start(producer)
    except KafkaError as exc:
        raise CommandError(f"cannot reach Kafka ({exc}); nothing {nothing}", EXIT_UNAVAILABLE) from None
    return producer


async def start(client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
    """Start ``client``; one that cannot reach Kafka is closed before the error goes on (else aiokafka
    reports it unclosed at exit)."""
    try:
        await client.start()
    except KafkaError:
        await client.stop()
        raise


def read_messages(path: Path, types: dict[str, set[str]] | None = None) -> Iterator[tuple[bytes, dict | None]]:
    """Yield (value bytes, parsed record or None). JSON lines are sent as they are, even when
    malformed, so the worker (not this command) decides what is a dead letter. CSV rows become JSON
    objects typed by ``types`` (the topic's schema, agents.commands.typed_rows): every column is
    text for a topic without one."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                record = typed_record(row, types or {})
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
    path = Path(file)
    path.open("rb").close()  # a file that cannot be read fails before Kafka is asked anything
    contract = contract_for(settings, topic)
    types = column_types(contract) if contract else None
    producer = clients.producer(settings, acks="all", linger_ms=5)
    await start(producer)
    sent = 0
    started = time.monotonic()
    try:
        for value, record in read_messages(path, types):
            key = _key(record, key_field, contract)
            await producer.send(topic, value, key=str(key).encode() if key is not None else None)
            sent += 1
            if rate and sent / rate > time.monotonic() - started:
                await asyncio.sleep(sent / rate - (time.monotonic() - started))
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def _key(record: dict | None, key_field: str | None, contract: Contract | None) -> object:
    """``--key-field`` when given, else the topic's documented key; none for an unparsable line."""
    if record is None:
        return None
    if key_field:
        return record.get(key_field)
    return message_key(contract, record) if contract else None


async def tail_topic(settings: Settings, topic: str, *, from_beginning: bool = False, limit: int | None = None,
                     idle_timeout: float | None = None, out=sys.stdout) -> int:
    consumer = clients.consumer(settings, topic, enable_auto_commit=False,
                                auto_offset_reset="earliest" if from_beginning else "latest")
    await start(consumer)
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
