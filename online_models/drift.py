"""Drift detectors on what the fraud model sees, says and gets wrong, each a River ADWIN.

- features: the mean of every input feature (pass-through ``f_*`` columns included), except the
  hour of day, which cycles by construction and would "drift" twice a day; the detectors see
  means over blocks of ``feature_block`` decisions (a shift in the mean shows just the same, and
  one ADWIN update per block instead of per event keeps ~25 detectors off the hot path);
- score: the mean decision score;
- error: the model's log loss on each label, as labels arrive (only increases signal: a model
  that gets better as it learns is not drift);
- label rate: the share of labels that say fraud.

A detection becomes a ``DriftSignal`` (severity ``critical`` for error and label rate, which say
the model is wrong or the world changed, ``warning`` for inputs and scores). The first ``grace``
observations of each detector are a warm-up and never signal.

>>> import random
>>> rng = random.Random(1)
>>> monitor = DriftMonitor("m", features=("amount",), grace=100)
>>> signals = [s for i in range(3000) for s in monitor.observe_decision(
...     {"amount": rng.gauss(20 if i < 2000 else 40, 5)}, 0.1, float(i), "1.0")]
>>> [(s.target, s.name, s.severity) for s in signals][:1], 2000 <= signals[0].detected_at < 2100
([('feature', 'amount', 'warning')], True)
>>> blocked = DriftMonitor("m", features=("amount",), grace=100, feature_block=10)
>>> signals = [s for i in range(3000) for s in blocked.observe_decision(
...     {"amount": rng.gauss(20 if i < 2000 else 40, 5)}, 0.1, float(i), "1.0")]
>>> [(s.name, s.observations) for s in signals][:1], 2000 <= signals[0].detected_at < 2100
([('amount', 204)], True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from river import drift

from schemas.records import DriftSignal

UNWATCHED = frozenset({"hour_of_day", "hour_sin", "hour_cos"})
MAX_WATCHED = 300


@dataclass
class Watch:
    target: str
    name: str
    delta: float
    clock: int = 32  # ADWIN tests for a change every ``clock`` updates (River's default)
    detector: drift.ADWIN = field(init=False)
    observations: int = 0
    quiet_until: int = 0

    def __post_init__(self) -> None:
        self.detector = drift.ADWIN(delta=self.delta, clock=self.clock)

    worse_only: bool = False  # for an error: a model getting better is not a drift to act on

    def update(self, value: float, grace: int, cooldown: int) -> bool:
        self.observations += 1
        before = self.detector.estimation
        self.detector.update(value)
        if self.worse_only and self.detector.estimation <= before:
            return False
        if self.detector.drift_detected and self.observations > max(grace, self.quiet_until):
            self.quiet_until = self.observations + cooldown  # one signal per change, not one per step
            return True
        return False


class DriftMonitor:
    """Parameters: the model's name, the features to watch, ADWIN's ``delta``, the warm-up ``grace``, the
    ``cooldown`` (observations) during which a detector that just fired stays silent, and
    ``feature_block``, the number of decisions whose feature means make one observation."""

    def __init__(self, model_name: str, features: tuple[str, ...] | None = None, delta: float = 0.002,
                 grace: int = 1000, cooldown: int = 5000, feature_block: int = 1) -> None:
        self.model_name = model_name
        self.grace = grace
        self.cooldown = cooldown
        self.delta = delta
        self.watch_all = features is None  # None: every feature seen (ADWIN costs ~0.2 us an update)
        self.feature_block = feature_block
        self.features = {name: self._feature_watch(name) for name in features or ()}
        self.score = Watch("score", model_name, delta)
        self.error = Watch("error", model_name, delta, worse_only=True)
        self.label_rate = Watch("label_rate", model_name, delta)
        self.signals = 0
        self._sums: dict[str, list[float]] = {}  # feature -> [sum, count] over the current block
        self._in_block = 0

    def observe_decision(self, x: dict, score: float, ts: float, version: str) -> list[DriftSignal]:
        if self.watch_all and len(self.features) < MAX_WATCHED:
            for name in x.keys() - self.features.keys() - UNWATCHED:
                self.features[name] = self._feature_watch(name)
        fired = self._observe_features(x)
        if self.score.update(score, self.grace, self.cooldown):
            fired.append(self.score)
        return [self._signal(w, ts, version) for w in fired]

    def _feature_watch(self, name: str) -> Watch:
        # A block is many events: test for a change as often, in events, as a per-event detector.
        return Watch("feature", name, self.delta, clock=max(1, 32 // self.feature_block))

    def _observe_features(self, x: dict) -> list[Watch]:
        if self.feature_block == 1:
            return [w for w in self.features.values() if w.name in x and w.update(x[w.name], self.grace,
                                                                                   self.cooldown)]
        sums = self._sums
        for name in self.features.keys() & x.keys():
            acc = sums.get(name)
            if acc is None:
                sums[name] = [x[name], 1]
            else:
                acc[0] += x[name]
                acc[1] += 1
        self._in_block += 1
        if self._in_block < self.feature_block:
            return []
        self._in_block, self._sums = 0, {}
        # grace and cooldown count blocks here, as they count observations of the detector.
        return [self.features[name] for name, (total, n) in sums.items()
                if self.features[name].update(total / n, self.grace // self.feature_block,
                                              self.cooldown // self.feature_block)]

    def observe_label(self, is_fraud: bool, score: float, ts: float, version: str) -> list[DriftSignal]:
        p = min(max(score, 1e-6), 1 - 1e-6)
        loss = -math.log(p if is_fraud else 1 - p)
        watched = ((self.error, loss), (self.label_rate, float(is_fraud)))
        fired = [w for w, v in watched if w.update(v, self.grace, self.cooldown)]
        return [self._signal(w, ts, version) for w in fired]

    def _signal(self, watch: Watch, ts: float, version: str) -> DriftSignal:
        self.signals += 1
        return DriftSignal(
            signal_id=f"drift-{watch.target}-{watch.name}-{self.signals}", target=watch.target, name=watch.name,
            detector=f"ADWIN(delta={watch.delta})", statistic=round(float(watch.detector.estimation), 6),
            threshold=watch.delta, severity="critical" if watch.target in ("error", "label_rate") else "warning",
            action="alerted", model_version=version, detected_at=ts, observations=watch.observations)
