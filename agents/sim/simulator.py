"""Publish simulated traffic to Kafka at a controlled rate (generators: agents.sim.traffic, agents.sim.reco_traffic).

A small share of poison messages is mixed in on purpose, so the demo shows dead letters.
The ground truth of every transaction is kept in ``Truth`` for the live ROCAUC figure.
`streamsense simulate` (``run_simulate``) runs here with no dashboard, so the image, which carries
no development stack, can run it next to the workers (docker/compose.yaml); `streamsense dev`
adds its figures to the same ``traffic``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import time
from dataclasses import dataclass, field

from agents import clients
from agents.commands.topics import create_topics
from agents.sim.pacing import Pacer
from agents.sim.reco_traffic import RecoTrafficSimulator
from agents.sim.traffic import TrafficSimulator
from schemas.settings import Settings

log = logging.getLogger(__name__)

# Simulated time runs faster than the wall clock (about 2,000x at 300 transactions/s); it starts
# this far in the past so event times stay behind the wall clock and inside max_past_s for a
# demo of about 20 minutes; the simulator stops when its clock reaches the wall clock.
SIMULATION_SPAN_S = 28 * 86400.0
# Shoppers and card testers change behaviour after two simulated days (a drift mid-run).
DRIFT_AFTER_S = 2 * 86400.0
# Interactions and recommendation requests per transaction sent.
RECO_SHARE = 0.5

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
    producer = clients.producer(settings, linger_ms=5, acks="all")
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
    producer = clients.producer(settings, linger_ms=5, acks="all")
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


def stop_event(duration: float | None) -> asyncio.Event:
    """Set on SIGINT or SIGTERM, or after ``duration`` seconds; call inside the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration:
        loop.call_later(duration, stop.set)
    return stop


async def traffic(settings: Settings, truth: Truth, stop: asyncio.Event, *, rate: float, seed: int) -> None:
    """Payments at ``rate`` transactions/s and shopping at ``RECO_SHARE`` of it, until ``stop``."""
    start = simulation_start(SIMULATION_SPAN_S)
    sim = TrafficSimulator(seed=seed, start_ts=start, drift_at=DRIFT_AFTER_S)
    shoppers = RecoTrafficSimulator(seed=seed, start_ts=start)
    await asyncio.gather(publish(settings, sim, truth, rate=rate, stop=stop, seed=seed),
                         publish_reco(settings, shoppers, truth, rate=rate * RECO_SHARE, stop=stop))


def run_simulate(settings: Settings, *, rate: float, seed: int, duration: float | None) -> int:
    """Only the simulators, against the configured Kafka (the compose file runs this next to the workers)."""
    async def simulate() -> None:
        await create_topics(settings)
        await traffic(settings, Truth(), stop_event(duration), rate=rate, seed=seed)

    asyncio.run(simulate())
    return 0
