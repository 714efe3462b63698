"""What the pipeline benchmark sends and how it measures: simulated traffic, loading a backlog,
paced sending with send times, reading outputs back, and a process's CPU time and RSS."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from agents import clients
from agents.dev.probes import metric
from agents.sim.pacing import Pacer
from agents.sim.reco_traffic import RecoTrafficSimulator
from agents.sim.traffic import TrafficSimulator
from schemas.settings import Settings

Message = tuple[str, bytes, bytes]  # topic attribute name (see Topics), key, value
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- traffic ---------------------------------------------------------------------------------------
def fraud_traffic(n: int, seed: int, *, users: int = 1000, now: float | None = None,
                  labels: bool = True) -> Iterator[Message]:
    """``n`` simulated transactions (and their labels, in event-time order) ending before ``now``."""
    now = time.time() if now is None else now
    # 1,000 users make a transaction every 14 s on average, fewer at night: start far enough back
    # (half as much again, plus a day) that ``n`` of them come before ``now``.
    start = now - (n * 22.0 * 1000 / users + 86400.0)
    sent = 0
    for ev in TrafficSimulator(seed=seed, start_ts=start, users=users).events():
        if sent >= n or ev.ts >= now:
            return
        if ev.kind == "transaction":
            sent += 1
            yield "transactions", ev.key.encode(), json.dumps(ev.payload).encode()
        elif labels:
            yield "fraud_labels", ev.key.encode(), json.dumps(ev.payload).encode()


def distinct_user_traffic(n: int, seed: int, now: float | None = None) -> Iterator[Message]:
    """One transaction for each of ``n`` distinct users: the state of ``n`` active users."""
    rng, now = random.Random(seed), time.time() if now is None else now
    for i in range(n):
        payload = {"event_id": f"mem-{i}", "ts": round(now - 3600 + i * 3600 / n, 3), "user_id": f"user-{i:07d}",
                   "merchant_id": f"m{rng.randrange(400):04d}", "amount": round(rng.lognormvariate(3.3, 0.6), 2),
                   "currency": "EUR", "country": "FR", "channel": rng.choice(("app", "web", "pos"))}
        yield "transactions", payload["user_id"].encode(), json.dumps(payload).encode()


def reco_traffic(n: int, seed: int, now: float | None = None) -> Iterator[Message]:
    """``n`` simulated interactions and recommendation requests."""
    now = time.time() if now is None else now
    sim = RecoTrafficSimulator(seed=seed, start_ts=now - 7 * 86400)
    for ev in itertools.islice(sim.events(), n):
        topic = "reco_requests" if ev.kind == "reco_request" else "interactions"
        yield topic, ev.key.encode(), json.dumps(ev.payload).encode()


def restamped(messages: Iterable[Message]) -> Iterator[Message]:
    """The same messages with event time = the wall clock at sending (for paced runs)."""
    for topic, key, value in messages:
        doc = json.loads(value)
        doc["ts"] = round(time.time(), 3)
        yield topic, key, json.dumps(doc).encode()


# -- Kafka I/O -------------------------------------------------------------------------------------
async def preload(settings: Settings, messages: Iterable[Message]) -> dict[str, int]:
    """Send everything as fast as the broker takes it; returns counts per topic attribute."""
    producer = clients.producer(settings, linger_ms=20, max_batch_size=256 * 1024, acks="all")
    await producer.start()
    counts: dict[str, int] = {}
    try:
        pending = []
        for attr, key, value in messages:
            pending.append(await producer.send(getattr(settings.topics, attr), value, key=key))
            counts[attr] = counts.get(attr, 0) + 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return counts


async def paced(settings: Settings, messages: Iterable[Message], rate: float, sent_at: dict[str, float],
                id_field: str) -> int:
    """Send at ``rate`` messages/s, noting each message's id and send time."""
    producer = clients.producer(settings, linger_ms=1, acks="all")
    await producer.start()
    pacer = Pacer(rate)
    try:
        for attr, key, value in restamped(messages):
            doc_id = json.loads(value).get(id_field)
            if doc_id is not None:
                sent_at[doc_id] = time.time()
            await producer.send(getattr(settings.topics, attr), value, key=key)
            await pacer.sent_one()
    finally:
        await producer.stop()
    return pacer.sent


async def read_back(settings: Settings, topic: str, id_field: str, sent_at: dict[str, float],
                    done: asyncio.Event, latencies: list[float]) -> None:
    """Latency of every output whose ``id_field`` was sent (``sent_at``), until ``done`` and idle."""
    consumer = clients.consumer(settings, topic, auto_offset_reset="latest", fetch_max_wait_ms=5, group_id=None)
    await consumer.start()
    try:
        idle = 0
        while idle < 20:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time()
            got = 0
            for records in batches.values():
                for record in records:
                    doc_id = json.loads(record.value).get(id_field)
                    if doc_id in sent_at:
                        latencies.append(now - sent_at.pop(doc_id))
                        got += 1
            idle = idle + 1 if done.is_set() and not got else 0
            if done.is_set() and not sent_at:
                return
    finally:
        await consumer.stop()


# -- processes and their figures ---------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def processed(port: int, topics: Iterable[str]) -> int:
    """Input messages a streamsense worker has finished, from its /metrics."""
    wanted = set(topics)
    return int(metric(port, "streamsense_events_total",
                      where=lambda labels: labels.get("topic") in wanted and labels.get("outcome") != "parked"))
