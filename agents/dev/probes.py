"""Reading a running worker from outside: its metrics and readiness (its own HTTP endpoints), and how far
its consumer group has committed. Used by `streamsense dev`, the benchmarks and the tests alike."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families


def series(port: int, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """The worker's samples named ``name`` whose labels include ``labels``: (labels, value) each."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [(s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == name and labels.items() <= s.labels.items()]


def metric(port: int, name: str, where: Callable[[dict[str, str]], bool] = lambda labels: True,
           **labels: str) -> float:
    """The sum of the worker's samples named ``name`` whose labels include ``labels`` and pass ``where``."""
    return sum(value for found, value in series(port, name, **labels) if where(found))


def ready(port: int, timeout: float = 2.0) -> bool:
    """Whether /ready answers 200 (partitions assigned, Redis answers, models loaded)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def ready_state(port: int, timeout: float = 5.0) -> dict:
    """The body of /ready: each check, and the warnings about Redis (200 or 503 alike)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:  # 503: not ready, the same body
        return json.load(exc)


async def group_offsets(bootstrap_servers: str, group_id: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition of ``topic``: its end offset and the offset ``group_id`` committed there (0 when
    none). Equal everywhere means the group has handled, and committed, everything on the topic.

    The end is the high watermark of a fetch, not ``end_offsets``: Tansu's ListOffsets answered the
    last batch's base offset + 1 (1 for a partition holding 22 records produced as one batch)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata partitions_for_topic reads
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        committed = {tp: await consumer.committed(tp) or 0 for tp in tps}
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, committed[tp])
        while any(consumer.highwater(tp) is None for tp in tps):
            await consumer.getmany(*tps, timeout_ms=200, max_records=1)
        return {tp.partition: (consumer.highwater(tp), committed[tp]) for tp in tps}
    finally:
        await consumer.stop()
