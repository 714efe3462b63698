"""Compressed batches, written and read by streamsense's own clients against the real broker: a
producer configured with each codec, a consumer that reads them back (aiokafka decompresses with
cramjam; without it the producer refuses the codec and the consumer cannot read such a batch)."""

from __future__ import annotations

import asyncio
import json

import pytest

from agents import clients
from agents.commands.topics import create_topics

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd"])
def test_a_batch_compressed_with_each_codec_is_written_and_read(settings, codec: str) -> None:
    settings = settings.replace(compression_type=codec)
    topic = settings.topics.transactions
    asyncio.run(create_topics(settings, [topic]))
    values = [json.dumps({"n": n, "text": "streamsense " * 20}).encode() for n in range(50)]

    async def round_trip() -> list[bytes]:
        producer = clients.producer(settings, acks="all", linger_ms=50)
        await producer.start()
        try:
            assert producer.client is not None and producer._compression_type == codec  # noqa: SLF001
            await asyncio.gather(*[await producer.send(topic, v, key=b"k") for v in values])
        finally:
            await producer.stop()
        consumer = clients.consumer(settings, topic, auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        got: list[bytes] = []
        try:
            while len(got) < len(values):
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                got += [r.value for records in batch.values() for r in records]
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(round_trip()) == values
