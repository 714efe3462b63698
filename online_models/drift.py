"""Drift detectors on what the fraud model sees, says and gets wrong; each signal is one episode.

- inputs and score, at decision time: the population stability index of every watched value
  (``online_models.psi``) in the last 1,000 decisions against the 2,000 before them, on the
  features as ``online_models.stationary`` reads them (nothing that follows the daily rhythm,
  cumulative counts as rates), and on the decision score once the
  classifier has its full weight (before that the score moves because the blend does). All the
  values form one detector: a change is one signal, naming the values that moved most;
- error: the model's log loss on each label, as labels arrive (River's ADWIN; only increases
  signal: a model that gets better as it learns is not drift);
- label rate: the share of labels that say fraud (ADWIN).

Warm-up, per detector (no signal before): inputs and score, ``warmup_s`` of event time (a day:
the longest feature window) and then 3,000 decisions to fill both windows; error and label
rate, ``grace`` labels. Hysteresis: the input detector stays in its episode until every PSI is
back under ``off``; an ADWIN detector that fired stays quiet for ``cooldown`` observations.

A detection becomes a ``DriftSignal`` (severity ``critical`` for error and label rate, which say
the model is wrong or the world changed, ``warning`` for inputs and scores) carrying the
reference and current statistic and, for inputs, the values that moved most.

>>> import random
>>> rng = random.Random(1)
>>> monitor = DriftMonitor("m", warmup_s=0.0, block=100)
>>> signals = [s for i in range(6000) for s in monitor.observe_decision(
...     {"amount": rng.gauss(20 if i < 4000 else 40, 5), "hour_sin": rng.random()}, 0.1, float(i), "1.0")]
>>> [(s.target, s.name, s.reference, round(s.current), s.detected_at) for s in signals]
[('feature', 'amount', 20.026461, 25, 4099.0)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from river import drift

from online_models.psi import PsiWatch, Shift
from online_models.stationary import DAY, StationaryView
from schemas.records import DriftSignal

MAX_WATCHED = 300
SCORE = "score"


@dataclass
class Watch:
    """An ADWIN on a stream of labels' values, with a cooldown after each detection."""

    target: str
    name: str
    delta: float
    clock: int = 32  # ADWIN tests for a change every ``clock`` updates (River's default)
    detector: drift.ADWIN = field(init=False)
    observations: int = 0
    quiet_until: int = 0
    worse_only: bool = False  # for an error: a model getting better is not a drift to act on
    before: float = 0.0  # the estimate just before the last detection

    def __post_init__(self) -> None:
        self.detector = drift.ADWIN(delta=self.delta, clock=self.clock)

    def update(self, value: float, grace: int, cooldown: int) -> bool:
        self.observations += 1
        before = self.detector.estimation
        self.detector.update(value)
        if self.worse_only and self.detector.estimation <= before:
            return False
        if self.detector.drift_detected and self.observations > max(grace, self.quiet_until):
            self.quiet_until = self.observations + cooldown  # one signal per change, not one per step
            self.before = before
            return True
        return False


class DriftMonitor:
    """Parameters: the model's name; ``features`` to watch (None: every feature seen, up to
    ``MAX_WATCHED``; ``()``: none, nor the score); ADWIN's ``delta``, warm-up ``grace`` and
    ``cooldown`` (labels); the inputs' ``warmup_s`` (event time), ``block`` (decisions per PSI test),
    ``current`` / ``reference`` windows (blocks) and the episode thresholds ``on`` / ``off``."""

    def __init__(self, model_name: str, features: tuple[str, ...] | None = None, delta: float = 0.002,
                 grace: int = 1000, cooldown: int = 5000, *, warmup_s: float = DAY, block: int = 250,
                 current: int = 4, reference: int = 8, on: float = 0.25, off: float = 0.1) -> None:
        self.model_name = model_name
        self.grace = grace
        self.cooldown = cooldown
        self.delta = delta
        self.features = features
        self.view = StationaryView(warmup_s)
        self.psi_settings = {"block": block, "current": current, "reference": reference, "on": on, "off": off}
        self.inputs: PsiWatch | None = None  # built at the first decision after the warm-up
        self.error = Watch("error", model_name, delta, worse_only=True)
        self.label_rate = Watch("label_rate", model_name, delta)
        self.signals = 0

    def warmups(self) -> dict[str, str]:
        """Each detector's warm-up, as a sentence (``evaluate`` prints them)."""
        s = self.psi_settings
        windows = (s["current"] + s["reference"]) * s["block"]
        return {"inputs": f"{self.view.warmup_s:g} s of event time, then {windows:,} decisions",
                "score": "as inputs, counting only decisions made with the classifier at full weight",
                "error": f"{self.grace:,} labels", "label_rate": f"{self.grace:,} labels"}

    def observe_decision(self, x: dict, score: float, ts: float, version: str,
                         score_settled: bool = True) -> list[DriftSignal]:
        """``score_settled``: the score is the settled blend (else it is not watched for this decision)."""
        if self.features == ():
            return []
        seen = self.view(x, ts)
        if seen is None:
            return []
        if self.inputs is None:
            names = self.view.watched(x if self.features is None else self.features)
            self.inputs = PsiWatch((*names[:MAX_WATCHED], SCORE), **self.psi_settings)
        row = [seen.get(name, math.nan) for name in self.inputs.columns[:-1]]
        row.append(score if score_settled else math.nan)
        shift = self.inputs.add(row)
        return [] if shift is None else [self._shift_signal(shift, ts, version)]

    def observe_label(self, is_fraud: bool, score: float, ts: float, version: str) -> list[DriftSignal]:
        p = min(max(score, 1e-6), 1 - 1e-6)
        loss = -math.log(p if is_fraud else 1 - p)
        watched = ((self.error, loss), (self.label_rate, float(is_fraud)))
        fired = [w for w, v in watched if w.update(v, self.grace, self.cooldown)]
        return [self._adwin_signal(w, ts, version) for w in fired]

    def _shift_signal(self, shift: Shift, ts: float, version: str) -> DriftSignal:
        top = shift.moved[0]
        s = self.psi_settings
        detector = (f"PSI(current={s['current'] * s['block']}, reference={s['reference'] * s['block']} decisions, "
                    f"on={s['on']}, off={s['off']})")
        return self._signal(SCORE if top.name == SCORE else "feature", top.name, detector, top.psi, s["on"],
                            top.reference, top.current, ts, version, shift.rows,
                            tuple({"name": m.name, "psi": m.psi, "reference": m.reference, "current": m.current}
                                  for m in shift.moved))

    def _adwin_signal(self, watch: Watch, ts: float, version: str) -> DriftSignal:
        return self._signal(watch.target, watch.name, f"ADWIN(delta={watch.delta})",
                            round(float(watch.detector.estimation), 6), watch.delta, round(float(watch.before), 6),
                            round(float(watch.detector.estimation), 6), ts, version, watch.observations, ())

    def _signal(self, target, name, detector, statistic, threshold, reference, current, ts, version,
                observations, moved) -> DriftSignal:
        self.signals += 1
        return DriftSignal(
            signal_id=f"drift-{target}-{name}-{self.signals}", target=target, name=name, detector=detector,
            statistic=statistic, threshold=threshold, severity="critical" if target in ("error", "label_rate")
            else "warning", action="alerted", model_version=version, detected_at=ts, observations=observations,
            reference=reference, current=current, moved=moved)
