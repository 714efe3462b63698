"""Windowed fraud features per user and per merchant, over event time. Pure: state in, state out.

Where the state lives (the caller keeps it; here it is only folded):
- ``UserState``: one compact blob per user, written only by the worker that owns the user's
  partition. It keeps the user's recent events (24 h plus the allowed lateness behind the user's
  watermark, capped), running amount statistics over the whole history, and the merchants,
  devices and countries seen before, as short tags keyed with the pseudonym key (raw ids are
  never stored, and a tag cannot be reversed by hashing guesses without the key).
- merchant state: a flat hash ``field -> float`` shared by all workers and changed only by
  atomic increments (``MerchantUpdate``): hourly buckets ``c:<start>`` (count) and ``s:<start>``
  (amount sum), ``n`` (all-time count), ``labels`` and ``frauds`` (label counters).

Every feature describes the state *before* the event (the event is not in its own windows) and
windows end at the event's own time, so an out-of-order event within the allowed lateness sees
the events before it in event time. An event further behind the user's watermark than the
allowed lateness is *late*: it is scored from the state as is, flagged, and never merged.

>>> cfg = FeatureConfig()
>>> def tx(i, ts, amount, merchant="m1", device="d1", country="FR"):
...     return Transaction(f"e{i}", ts, "alice", merchant, amount, "EUR", country, "app", device)
>>> r1 = transaction_features(tx(1, 1_700_000_000.0, 20.0), None, {}, cfg)
>>> r1.features["user_history_count"], r1.features["first_time_merchant"], r1.late
(0.0, 1.0, False)
>>> r2 = transaction_features(tx(2, 1_700_000_030.0, 25.0), r1.user_state, {}, cfg)
>>> r2.features["user_count_1m"], r2.features["secs_since_last"], r2.features["first_time_merchant"]
(1.0, 30.0, 0.0)
>>> r3 = transaction_features(tx(3, 1_700_000_100.0, 900.0, "m9", "d2", "BR"), r2.user_state, {}, cfg)
>>> r3.features["user_count_1h"], r3.features["new_device"], r3.features["new_country"], r3.features["user_amount_z"]
(2.0, 1.0, 1.0, 10.0)
>>> late = transaction_features(tx(4, 1_699_990_000.0, 5.0), r3.user_state, {}, cfg)
>>> late.late, late.user_state is r3.user_state, late.merchant_update.increments
(True, True, {})
"""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import Mapping
from dataclasses import dataclass

from schemas import internal_json
from schemas.keyring import Pseudonyms
from schemas.records import Transaction
from streams.windows import bucket_start, bucketed_total, span, welford, z_score

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
# secs_since_last for a user's first event, and its upper bound.
NO_PREVIOUS_S = 30 * DAY
# Beta prior of a merchant's fraud rate: a new merchant reads as PRIOR_RATE until labels arrive.
PRIOR_RATE, PRIOR_WEIGHT = 0.01, 20.0

FEATURE_NAMES = (
    "amount", "log_amount", "user_count_1m", "user_count_1h", "user_count_24h", "user_sum_1m", "user_sum_1h",
    "user_sum_24h", "user_amount_z", "user_amount_ratio", "user_history_count", "secs_since_last",
    "user_distinct_merchants_24h",
    "user_distinct_countries_24h", "user_distinct_devices_24h", "first_time_merchant", "new_device",
    "new_country", "hour_of_day", "hour_sin", "hour_cos", "merchant_count_1h", "merchant_count_24h",
    "merchant_sum_24h", "merchant_tx_count", "merchant_fraud_rate",
)


@dataclass(frozen=True)
class FeatureConfig:
    allowed_lateness_s: float = 300.0
    max_user_events: int = 256  # recent events kept per user; beyond it the oldest are dropped
    max_known: int = 64  # merchants / devices / countries remembered per user (least recent dropped)
    merchant_bucket_s: int = 3600
    pseudonyms: Pseudonyms = Pseudonyms("t", b"tests only")  # the worker's comes from its settings

    @classmethod
    def from_settings(cls, settings) -> FeatureConfig:
        return cls(allowed_lateness_s=float(settings.allowed_lateness_s), pseudonyms=settings.pseudonyms())


@dataclass(frozen=True)
class UserState:
    """One user's fold state. Events are (ts, amount, merchant tag, country tag, device tag), by ts."""

    events: tuple[tuple[float, float, str, str, str], ...] = ()
    count: int = 0  # every event ever merged
    mean: float = 0.0
    m2: float = 0.0
    watermark: float = float("-inf")
    merchants: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()

    def to_bytes(self) -> bytes:
        # Floats are kept exact (no rounding), so features from a stored state equal the in-memory fold.
        doc = {"e": [list(e) for e in self.events], "n": self.count,
               "mu": self.mean, "m2": self.m2, "w": self.watermark if self.count else None,
               "km": self.merchants, "kd": self.devices, "kc": self.countries}
        return internal_json.dumps(doc)

    @classmethod
    def from_bytes(cls, raw: bytes) -> UserState:
        d = internal_json.loads(raw)
        return cls(events=tuple(tuple(e) for e in d["e"]), count=d["n"], mean=d["mu"], m2=d["m2"],
                   watermark=float("-inf") if d["w"] is None else d["w"], merchants=tuple(d["km"]),
                   devices=tuple(d["kd"]), countries=tuple(d["kc"]))


@dataclass(frozen=True)
class MerchantUpdate:
    increments: dict[str, float]
    deletions: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeatureResult:
    features: dict[str, float]
    user_state: UserState
    merchant_update: MerchantUpdate
    late: bool


def apply_merchant_update(snapshot: Mapping[str, float], update: MerchantUpdate) -> dict[str, float]:
    """The merchant hash after ``update``, as Redis would hold it (a new dict).

    >>> apply_merchant_update({"n": 2.0, "c:0": 2.0}, MerchantUpdate({"n": 1.0, "c:3600": 1.0}, ("c:0",)))
    {'n': 3.0, 'c:3600': 1.0}
    """
    out = dict(snapshot)
    for name, delta in update.increments.items():
        out[name] = out.get(name, 0.0) + delta
    for name in update.deletions:
        out.pop(name, None)
    return out


def merchant_label_update(is_fraud: bool, correction: bool = False) -> MerchantUpdate:
    """Label counters of a merchant; a ``correction`` turns an assumed-legitimate label into fraud.

    >>> merchant_label_update(True).increments, merchant_label_update(True, correction=True).increments
    ({'labels': 1.0, 'frauds': 1.0}, {'frauds': 1.0})
    """
    if correction:
        return MerchantUpdate({"frauds": 1.0 if is_fraud else 0.0})
    return MerchantUpdate({"labels": 1.0, "frauds": 1.0 if is_fraud else 0.0})


def merchant_fraud_rate(merchant: Mapping[str, float]) -> float:
    """Chargeback rate from labels, shrunk towards PRIOR_RATE while labels are few.

    >>> merchant_fraud_rate({}), round(merchant_fraud_rate({"labels": 100.0, "frauds": 30.0}), 3)
    (0.01, 0.252)
    """
    return (merchant.get("frauds", 0.0) + PRIOR_RATE * PRIOR_WEIGHT) / (merchant.get("labels", 0.0) + PRIOR_WEIGHT)


def _merchant_buckets(merchant: Mapping[str, float], prefix: str) -> dict[int, float]:
    return {int(name[2:]): value for name, value in merchant.items() if name.startswith(prefix)}


def _merchant_features(merchant: Mapping[str, float], ts: float, width: int) -> dict[str, float]:
    counts, sums = _merchant_buckets(merchant, "c:"), _merchant_buckets(merchant, "s:")
    return {
        "merchant_count_1h": bucketed_total(counts, ts, HOUR, width),
        "merchant_count_24h": bucketed_total(counts, ts, DAY, width),
        "merchant_sum_24h": bucketed_total(sums, ts, DAY, width),
        "merchant_tx_count": merchant.get("n", 0.0),
        "merchant_fraud_rate": merchant_fraud_rate(merchant),
    }


def _merchant_update(merchant: Mapping[str, float], ts: float, amount: float, width: int) -> MerchantUpdate:
    current = bucket_start(ts, width)
    oldest_kept = current - DAY - width
    stale = tuple(name for name in merchant if name[:2] in ("c:", "s:") and int(name[2:]) < oldest_kept)
    return MerchantUpdate({f"c:{current}": 1.0, f"s:{current}": amount, "n": 1.0}, stale)


def _user_features(tx: Transaction, state: UserState, m: str, c: str, d: str) -> dict[str, float]:
    events = state.events
    times = [e[0] for e in events]
    out: dict[str, float] = {}
    for name, horizon in (("1m", MINUTE), ("1h", HOUR), ("24h", DAY)):
        lo, hi = span(times, tx.ts, horizon)
        out[f"user_count_{name}"] = float(hi - lo)
        out[f"user_sum_{name}"] = sum(e[1] for e in events[lo:hi])
    lo, hi = span(times, tx.ts, DAY)
    day = events[lo:hi]
    previous = times[hi - 1] if hi else (state.watermark if state.watermark <= tx.ts else None)
    seen = state.count > 0
    out.update(
        user_amount_z=z_score(tx.amount, state.count, state.mean, state.m2),
        # Robust where the z-score is not yet: one past amount is enough for a ratio.
        user_amount_ratio=min(tx.amount / max(state.mean, 1.0), 1000.0) if seen else 1.0,
        user_history_count=float(state.count),
        secs_since_last=min(tx.ts - previous, NO_PREVIOUS_S) if previous is not None else NO_PREVIOUS_S,
        user_distinct_merchants_24h=float(len({e[2] for e in day})),
        user_distinct_countries_24h=float(len({e[3] for e in day})),
        user_distinct_devices_24h=float(len({e[4] for e in day if e[4]})),
        first_time_merchant=float(m not in state.merchants),
        # With no history nothing is "new" yet: a first device or country is no signal.
        new_device=float(seen and bool(d) and d not in state.devices),
        new_country=float(seen and c not in state.countries),
    )
    return out


def _remember(known: tuple[str, ...], value: str, cap: int) -> tuple[str, ...]:
    """Move ``value`` to the most recent end, dropping the least recent beyond ``cap``."""
    if not value:
        return known
    return (tuple(k for k in known if k != value) + (value,))[-cap:]


def _merge(state: UserState, tx: Transaction, m: str, c: str, d: str, cfg: FeatureConfig) -> UserState:
    events = list(state.events)
    insort(events, (tx.ts, tx.amount, m, c, d))
    watermark = max(state.watermark, tx.ts)
    keep_after = watermark - DAY - cfg.allowed_lateness_s
    events = [e for e in events if e[0] >= keep_after][-cfg.max_user_events:]
    count, mean, m2 = welford(state.count, state.mean, state.m2, tx.amount)
    return UserState(tuple(events), count, mean, m2, watermark, _remember(state.merchants, m, cfg.max_known),
                     _remember(state.devices, d, cfg.max_known), _remember(state.countries, c, cfg.max_known))


def transaction_features(tx: Transaction, user_state: UserState | None, merchant: Mapping[str, float],
                         cfg: FeatureConfig) -> FeatureResult:
    """Features of ``tx`` from the state before it, and the state after it (see the module doc)."""
    state = user_state or UserState()
    tag = cfg.pseudonyms.tag
    m, c, d = tag(tx.merchant_id), tag(tx.country), tag(tx.device_id) if tx.device_id else ""
    hour = (tx.ts % DAY) / HOUR
    features = {"amount": tx.amount, "log_amount": math.log1p(tx.amount)}
    features.update(_user_features(tx, state, m, c, d))
    features.update(hour_of_day=float(int(hour)), hour_sin=math.sin(2 * math.pi * hour / 24),
                    hour_cos=math.cos(2 * math.pi * hour / 24))
    features.update(_merchant_features(merchant, tx.ts, cfg.merchant_bucket_s))
    features.update({f"f_{name}": value for name, value in tx.features.items()})
    if state.count and state.watermark - tx.ts > cfg.allowed_lateness_s:
        return FeatureResult(features, state, MerchantUpdate({}), late=True)
    return FeatureResult(features, _merge(state, tx, m, c, d, cfg),
                         _merchant_update(merchant, tx.ts, tx.amount, cfg.merchant_bucket_s), late=False)
