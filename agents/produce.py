"""Outputs handed to the broker in bulk: one record batch per topic partition.

Faust's ``send`` costs, per record, a call through its producer, an aiokafka ``send`` (metadata
wait, serialising, partitioning, the accumulator) and a future; a batch of 500 decisions paid that
500 times. Here a batch's outputs are grouped by the partition Faust's own ``send`` would pick
(its partitioner, on the key), appended in order to aiokafka record batches, and each batch is
handed over with one ``send_batch`` on the producer underneath Faust's (the same connection).
Within a partition the records keep their order; each handed-over batch has one future that
resolves once the broker has every record in it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence

import faust

from agents.messages import Emit


def by_partition(app: faust.App, emits: Sequence[Emit]) -> dict[tuple[str, int], list[int]]:
    """The positions of ``emits`` per (topic, partition), in order. The topics' metadata must be known."""
    parts: dict[tuple[str, int], list[int]] = {}
    for i, e in enumerate(emits):
        tp = app.producer.key_partition(e.topic, e.key)
        parts.setdefault((tp.topic, tp.partition), []).append(i)
    return parts


async def send_batch(app: faust.App, topic: str, partition: int, batch) -> Awaitable:
    """One closed record batch handed to the producer; the future resolves once the broker has it."""
    return await app.producer._ensure_producer().send_batch(batch, topic, partition=partition)


async def hand_over(app: faust.App, emits: Sequence[Emit]) -> AsyncIterator[tuple[list[int], Awaitable]]:
    """Each batch handed over: (the positions in ``emits`` of its records, its future)."""
    kafka = app.producer._ensure_producer()  # the aiokafka producer underneath Faust's send
    for topic in {e.topic for e in emits}:
        await kafka.partitions_for(topic)  # waits for the topic's metadata, as send does
    for (topic, partition), positions in by_partition(app, emits).items():
        batch, taken = kafka.create_batch(), []
        for i in positions:
            if batch.append(key=emits[i].key, value=emits[i].value, timestamp=None) is None:
                batch.close()  # full (the first record always fits): hand it over, start the next
                yield taken, await send_batch(app, topic, partition, batch)
                batch, taken = kafka.create_batch(), []
                batch.append(key=emits[i].key, value=emits[i].value, timestamp=None)
            taken.append(i)
        batch.close()  # nothing else may join it: its records are exactly ours
        yield taken, await send_batch(app, topic, partition, batch)
