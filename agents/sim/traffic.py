"""A seeded generator of realistic payment traffic, in event-time order, with delayed chargebacks.

Populations and patterns:
- normal shoppers: a home country, one or two devices, a handful of favourite merchants, a
  personal amount profile (log-normal), activity that follows the time of day;
- card testing: a stolen card tried with many tiny amounts at many merchants within minutes;
- account takeover: a new device from a new country, a few large purchases within the hour;
- amount anomalies: one purchase far above the user's usual amounts, at a new merchant;
- chargebacks: most fraud is reported minutes to hours later, some days later, some never;
  a few legitimate payments are confirmed genuine after a dispute (an explicit negative label);
- drift (optional, at ``drift_at``): shoppers spend more and card testers move to larger amounts.

Only the simulator knows the truth (``SimEvent.is_fraud``); workers see the payloads alone.

>>> sim = TrafficSimulator(seed=7, start_ts=1_700_000_000.0, users=300)
>>> events = list(itertools.islice(sim.events(), 3000))
>>> all(a.ts <= b.ts for a, b in zip(events, events[1:]))
True
>>> sorted({e.kind for e in events}), sorted({e.pattern for e in events if e.is_fraud})
(['label', 'transaction'], ['account_takeover', 'amount_anomaly', 'card_testing'])
>>> again = itertools.islice(TrafficSimulator(seed=7, start_ts=1_700_000_000.0, users=300).events(), 3000)
>>> [e.payload for e in again] == [e.payload for e in events]
True
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

HOME_COUNTRIES = (("FR", 40), ("DE", 20), ("ES", 15), ("IT", 10), ("NL", 10), ("BE", 5))
FOREIGN_COUNTRIES = ("NG", "BR", "RU", "US", "CN", "ID", "VN")
CHANNEL_MIX = (("app", 45), ("web", 35), ("pos", 18), ("phone", 2))
PATTERN_MIX = (("card_testing", 35), ("account_takeover", 35), ("amount_anomaly", 30))
DAY = 86400.0
# Unlabelled after this much simulated time counts as legitimate (demo and tests).
SIMULATED_LABEL_HORIZON_S = 1 * 3600.0


@dataclass(frozen=True)
class SimEvent:
    kind: str  # "transaction" or "label"
    ts: float  # event time at which the message is emitted
    key: str  # Kafka key: user_id for transactions, event_id for labels
    payload: dict
    is_fraud: bool | None = None
    pattern: str = "normal"
    next_item: str | None = None  # reco requests: the item the user interacts with next (held back)


@dataclass
class Shopper:
    user_id: str
    country: str
    devices: list[str]
    merchants: list[str]
    log_amount_mu: float
    log_amount_sigma: float
    channel: str


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    names, weights = zip(*pairs, strict=True)
    return rng.choices(names, weights)[0]


def diurnal(ts: float) -> float:
    """Relative activity at a time of day, in (0, 1]; quiet at night, busy in the afternoon.

    >>> round(diurnal(4 * 3600), 2), round(diurnal(15 * 3600), 2)
    (0.15, 1.0)
    """
    hour = (ts % DAY) / 3600.0
    return 0.15 + 0.85 * max(0.0, math.sin(math.pi * (hour - 7.0) / 16.0))


@dataclass
class TrafficSimulator:
    """Seeded traffic generator.

    Parameters
    ----------
    seed
        Everything random is drawn from ``random.Random(seed)``.
    start_ts
        Event time of the simulation's start (epoch seconds).
    users, merchants
        Population sizes.
    tx_per_user_day
        Average legitimate transactions per shopper per day.
    fraud_share
        Approximate share of transactions that are fraud.
    drift_at
        Seconds after ``start_ts`` at which behaviour drifts (None: no drift).
    """

    seed: int = 42
    start_ts: float = 1_700_000_000.0
    users: int = 1000
    merchants: int = 400
    tx_per_user_day: float = 6.0
    fraud_share: float = 0.015
    drift_at: float | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        rng = self._rng
        merchant_ids = [f"m{i:04d}" for i in range(self.merchants)]
        popularity = [1.0 / (i + 1) ** 0.8 for i in range(self.merchants)]
        self._merchant_ids = merchant_ids
        self._shoppers = [
            Shopper(
                user_id=f"u{i:05d}", country=_weighted(rng, HOME_COUNTRIES),
                devices=[f"d{i:05d}-{k}" for k in range(rng.choice((1, 1, 2)))],
                merchants=rng.choices(merchant_ids, popularity, k=6),
                log_amount_mu=rng.gauss(3.3, 0.5), log_amount_sigma=rng.uniform(0.3, 0.7),
                channel=_weighted(rng, CHANNEL_MIX),
            )
            for i in range(self.users)
        ]
        self._activity = [rng.gammavariate(2.0, 0.5) for _ in self._shoppers]
        self._normal_rate = self.users * self.tx_per_user_day / DAY  # peak-normalised below
        mean_episode = 0.35 * 8 + 0.35 * 2 + 0.30 * 1
        self._episode_rate = self._normal_rate * self.fraud_share / mean_episode
        self._seq = itertools.count()
        self._tx_ids = itertools.count()
        self._fraud_devices = itertools.count()

    def events(self) -> Iterator[SimEvent]:
        """An endless stream of transactions and labels in event-time order."""
        rng = self._rng
        heap: list[tuple[float, int, SimEvent]] = []
        now = self.start_ts
        # Thinning: candidate arrivals at the peak rate, kept with probability diurnal(t).
        peak = (self._normal_rate + self._episode_rate) / 0.55  # mean of diurnal() is about 0.55
        while True:
            now += rng.expovariate(peak)
            while heap and heap[0][0] <= now:
                yield heapq.heappop(heap)[2]
            if rng.random() > diurnal(now):
                continue
            if rng.random() < self._episode_rate / (self._normal_rate + self._episode_rate):
                for ev in self._episode(now):
                    heapq.heappush(heap, (ev.ts, next(self._seq), ev))
                continue
            tx = self._normal(now)
            yield tx
            for label in self._labels_for(tx):
                heapq.heappush(heap, (label.ts, next(self._seq), label))

    # -- patterns ------------------------------------------------------------------------------
    def _drifted(self, ts: float) -> bool:
        return self.drift_at is not None and ts >= self.start_ts + self.drift_at

    def _transaction(self, ts: float, shopper: Shopper, *, merchant: str, amount: float, country: str,
                     device: str, channel: str, is_fraud: bool, pattern: str) -> SimEvent:
        payload = {
            "event_id": f"tx-{self.seed}-{next(self._tx_ids):08d}", "ts": round(ts, 3),
            "user_id": shopper.user_id, "merchant_id": merchant, "amount": round(amount, 2),
            "currency": "EUR", "country": country, "channel": channel, "device_id": device,
        }
        return SimEvent("transaction", ts, shopper.user_id, payload, is_fraud, pattern)

    def _normal(self, ts: float) -> SimEvent:
        rng = self._rng
        shopper = rng.choices(self._shoppers, self._activity)[0]
        amount = math.exp(rng.gauss(shopper.log_amount_mu, shopper.log_amount_sigma))
        if self._drifted(ts):
            amount *= 1.6
        merchant = rng.choice(shopper.merchants) if rng.random() < 0.85 else rng.choice(self._merchant_ids)
        return self._transaction(ts, shopper, merchant=merchant, amount=amount, country=shopper.country,
                                 device=rng.choice(shopper.devices), channel=shopper.channel,
                                 is_fraud=False, pattern="normal")

    def _episode(self, ts: float) -> list[SimEvent]:
        rng = self._rng
        victim = rng.choice(self._shoppers)
        pattern = _weighted(rng, PATTERN_MIX)
        stolen_device = f"fd{next(self._fraud_devices):06d}"
        events: list[SimEvent] = []
        if pattern == "card_testing":
            low, high = (4.0, 12.0) if self._drifted(ts) else (0.5, 3.0)
            for _ in range(rng.randint(4, 12)):
                ts += rng.uniform(3.0, 15.0)
                events.append(self._transaction(
                    ts, victim, merchant=rng.choice(self._merchant_ids), amount=rng.uniform(low, high),
                    country=victim.country, device=stolen_device, channel="web", is_fraud=True, pattern=pattern))
        elif pattern == "account_takeover":
            country = rng.choice(FOREIGN_COUNTRIES)
            for _ in range(rng.randint(1, 3)):
                ts += rng.uniform(60.0, 1200.0)
                events.append(self._transaction(
                    ts, victim, merchant=rng.choice(self._merchant_ids), amount=math.exp(rng.gauss(6.0, 0.5)),
                    country=country, device=stolen_device, channel=rng.choice(("web", "app")), is_fraud=True,
                    pattern=pattern))
        else:
            typical = math.exp(victim.log_amount_mu)
            events.append(self._transaction(
                ts, victim, merchant=rng.choice(self._merchant_ids), amount=typical * rng.uniform(8.0, 25.0),
                country=victim.country, device=rng.choice(victim.devices), channel=victim.channel, is_fraud=True,
                pattern=pattern))
        labelled = []
        for ev in events:
            labelled.append(ev)
            labelled.extend(self._labels_for(ev))
        return labelled

    def _labels_for(self, tx: SimEvent) -> list[SimEvent]:
        """A chargeback for most fraud (minutes to days later); rarely, a confirmed-genuine label."""
        rng = self._rng
        if tx.is_fraud:
            if rng.random() > 0.95:
                return []  # never reported
            roll = rng.random()
            if roll < 0.70:
                delay = rng.lognormvariate(math.log(40 * 60), 0.8)  # minutes to hours
            elif roll < 0.95:
                delay = rng.lognormvariate(math.log(6 * 3600), 0.6)  # hours
            else:
                delay = rng.uniform(1 * DAY, 5 * DAY)  # days
        elif rng.random() < 0.02:
            delay = rng.lognormvariate(math.log(3 * 3600), 0.7)
        else:
            return []
        event_id = tx.payload["event_id"]
        ts = tx.ts + delay
        payload = {"event_id": event_id, "is_fraud": bool(tx.is_fraud), "ts": round(ts, 3)}
        return [SimEvent("label", ts, event_id, payload, tx.is_fraud, tx.pattern)]
