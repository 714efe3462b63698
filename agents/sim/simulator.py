"""Publish simulated traffic to Kafka at a controlled rate (generators: agents.sim.traffic, agents.sim.reco_traffic).

A small share of poison messages is mixed in on purpose, so the demo shows dead letters.
The ground truth of every transaction is kept in ``Truth`` for the live ROCAUC figure.
"""

from __future__ import annotations

import asyncio
import json
import random
import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from agents.sim.pacing import Pacer
from agents.sim.reco_traffic import RecoTrafficSimulator
from agents.sim.traffic import TrafficSimulator
from schemas.settings import Settings

log = logging.getLogger(__name__)

# Each one must end as a dead letter: invalid JSON, a NaN, a wrong type, an unknown enum value.
POISON = (
    b"{not json",
    b'{"event_id": "p", "ts": NaN}',
    b'{"event_id": "bad-amount", "ts": 1, "user_id": "u", "merchant_id": "m", "amount": "12", '
    b'"currency": "EUR", "country": "FR", "channel": "web"}',
    b'{"event_id": "bad-channel", "ts": 1, "user_id": "u", "merchant_id": "m", "amount": 12, '
    b'"currency": "EUR", "country": "FR", "channel": "carrier-pigeon"}',
)


@dataclass
class Truth:
    """What the simulator knows and the worker must not: fraud truth and send times."""

    is_fraud: dict[str, bool] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)
    transactions: int = 0
    labels: int = 0
    poison: int = 0
    next_item: dict[str, str] = field(default_factory=dict)  # reco request id -> held-back item
    interactions: int = 0
    requests: int = 0


def simulation_start(span_s: float, now: float | None = None) -> float:
    """Start simulated time ``span_s`` in the past, so accelerated event time never passes the wall clock."""
    return (time.time() if now is None else now) - span_s


async def publish(settings: Settings, sim: TrafficSimulator, truth: Truth, *, rate: float,
                  stop: asyncio.Event, poison_share: float = 0.002, seed: int = 0,
                  limit: int | None = None) -> None:
    """Send transactions (and their labels when due) at ``rate`` transactions per second."""
    rng = random.Random(seed)
    topics = settings.topics
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5, acks="all")
    await producer.start()
    pacer = Pacer(rate)
    try:
        for ev in sim.events():
            if stop.is_set() or (limit is not None and truth.transactions >= limit):
                break
            if ev.ts > time.time():
                log.warning("simulated time reached the wall clock; the simulator stops here")
                break
            if ev.kind == "label":
                await producer.send(topics.fraud_labels, json.dumps(ev.payload).encode(), key=ev.key.encode())
                truth.labels += 1
                continue
            event_id = ev.payload["event_id"]
            truth.is_fraud[event_id] = bool(ev.is_fraud)
            truth.sent_at[event_id] = time.time()
            await producer.send(topics.transactions, json.dumps(ev.payload).encode(), key=ev.key.encode())
            truth.transactions += 1
            if rng.random() < poison_share:
                await producer.send(topics.transactions, rng.choice(POISON), key=b"poison")
                truth.poison += 1
            await pacer.sent_one()  # paced by transactions: labels and poison come on top
    finally:
        await producer.stop()


async def publish_reco(settings: Settings, sim: RecoTrafficSimulator, truth: Truth, *, rate: float,
                       stop: asyncio.Event) -> None:
    """Send interactions and recommendation requests at ``rate`` messages per second."""
    topics = settings.topics
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5, acks="all")
    await producer.start()
    pacer = Pacer(rate)
    try:
        for ev in sim.events():
            if stop.is_set() or ev.ts > time.time():
                break
            if ev.kind == "reco_request":
                truth.next_item[ev.payload["request_id"]] = ev.next_item
                truth.sent_at[ev.payload["request_id"]] = time.time()
                await producer.send(topics.reco_requests, json.dumps(ev.payload).encode(), key=ev.key.encode())
                truth.requests += 1
            else:
                await producer.send(topics.interactions, json.dumps(ev.payload).encode(), key=ev.key.encode())
                truth.interactions += 1
            await pacer.sent_one()
    finally:
        await producer.stop()
