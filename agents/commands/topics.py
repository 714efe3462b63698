"""Creating streamsense's topics: `streamsense simulate` and `dev`, the benchmarks and the tests
create them before they publish (a production cluster has them created by its operators)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from agents import clients
from schemas.settings import Settings


def compacted(settings: Settings) -> set[str]:
    """Control topics whose latest message per key is what matters (Kafka keeps it, compacts the rest)."""
    return {settings.topics.rule_sets}


def all_topics(settings: Settings) -> list[str]:
    return [getattr(settings.topics, f.name) for f in dataclasses.fields(settings.topics)]


async def create_topics(settings: Settings, names: list[str] | None = None, timeout: float = 30.0) -> None:
    """Create ``names`` (every topic of ``settings`` by default; idempotent) with
    ``settings.partitions`` each, and wait until the broker reports them with their partitions."""
    names = all_topics(settings) if names is None else names
    partitions = settings.partitions
    deadline = time.monotonic() + timeout
    admin = clients.admin(settings)
    while True:
        try:
            await admin.start()
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    try:
        try:
            compact = compacted(settings)
            await admin.create_topics([NewTopic(n, partitions, 1, topic_configs={"cleanup.policy": "compact"}
                                                if n in compact else None) for n in names])
        except TopicAlreadyExistsError:
            pass
        while True:
            described = await admin.describe_topics(names)
            ready = {t["topic"] for t in described if not t["error_code"] and len(t["partitions"]) == partitions}
            if ready >= set(names):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not ready after {timeout:.0f} s: {sorted(set(names) - ready)}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
