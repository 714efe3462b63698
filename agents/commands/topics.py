"""Creating streamsense's topics: `streamsense topics create` for an operator's cluster, and
`streamsense simulate` and `dev`, the benchmarks and the tests before they publish.

Every data topic gets ``partitions`` (keyed by user or event, so parallelism is per partition);
Faust's internal topics (the learn topic and the group's leader topic) have one partition each.
All get ``replication_factor``. Only ``compacted`` topics are compacted (rule-sets: the latest rule
set is what workers need); every other topic is a stream of events or records read in order
(model-events an audit trail), whose older records must not go before their retention.
"""

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


def internal_topics(settings: Settings) -> list[str]:
    """Faust's one-partition topics: the learn topic (its owner is the learner) and the group's leader topic."""
    return [settings.learn_topic, f"{settings.app_id}-__assignor-__leader"]


def partition_plan(settings: Settings, names: list[str]) -> dict[str, int]:
    """Partitions per topic: one for the internal topics, ``settings.partitions`` for every other.

    >>> partition_plan(Settings(partitions=8), ["transactions", "streamsense-v1-learn"])
    {'transactions': 8, 'streamsense-v1-learn': 1}
    """
    internal = set(internal_topics(settings))
    return {name: 1 if name in internal else settings.partitions for name in names}


async def create_topics(settings: Settings, names: list[str] | None = None, timeout: float = 30.0) -> dict[str, int]:
    """Create ``names`` (every data topic of ``settings`` by default; idempotent) as ``partition_plan``
    says, with ``settings.replication_factor`` replicas, and wait until the broker reports them with
    their partitions. Returns the plan."""
    plan = partition_plan(settings, all_topics(settings) if names is None else names)
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
            await admin.create_topics([NewTopic(n, p, settings.replication_factor,
                                                topic_configs={"cleanup.policy": "compact"} if n in compact else None)
                                       for n, p in plan.items()])
        except TopicAlreadyExistsError:
            pass
        while True:
            described = await admin.describe_topics(list(plan))
            ready = {t["topic"] for t in described if not t["error_code"] and len(t["partitions"]) == plan[t["topic"]]}
            if ready >= set(plan):
                return plan
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not ready after {timeout:.0f} s: {sorted(set(plan) - ready)}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
