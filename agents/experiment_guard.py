"""Guardrails and ramps of running experiments, judged by every worker each second.

Each tick, every running experiment's per-arm outcomes (all workers', from Redis) are judged by
``online_models.experiment_stats.verdict``:

- a treatment worse than control beyond its stated bound is rolled back: the experiment's status
  becomes ``rolled_back``, so every worker puts its users back on control at its next follow (about
  a second), and an ``experiment_rolled_back`` record goes to model-events and a critical signal to
  drift-signals (target ``score`` for the review+decline rate, ``error`` for the cost or hit rate);
- a treatment that held for ``ramp_after`` outcomes at its share is ramped to the next share
  (5 -> 25 -> 50 -> 100 %), with an ``experiment_ramped`` record.

The change is a compare-and-set in Redis (agents.stores.experiments): when several workers reach
the same verdict, one applies it and publishes; the others find it changed and do nothing.
The figures of each arm go to Prometheus on every tick (``streamsense_experiment_figure``).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from agents.experiment_arms import ExperimentArms
from agents.fraud_outcome import drift_emits
from agents.messages import Emit
from agents.metrics import Metrics
from agents.stores.experiments import ExperimentConflict, ExperimentStore
from online_models.experiment_stats import Verdict, arm_rows, verdict
from online_models.experiments import Experiment
from schemas.records import DriftSignal, ExperimentEvent
from schemas.settings import Settings

log = logging.getLogger(__name__)


class ExperimentGuard:
    def __init__(self, settings: Settings, store: ExperimentStore, arms: ExperimentArms, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.arms = arms  # this worker's routing: it follows a change it made at once
        self.metrics = metrics
        self.clock = clock
        self.by = f"worker@{socket.gethostname()}"

    async def judge(self, experiments: list[Experiment]) -> list[Emit]:
        """What to publish about ``experiments`` (the running ones) after judging them once."""
        emits: list[Emit] = []
        for experiment in experiments:
            counts, scores = await self.store.outcomes(experiment.experiment_id, with_scores=False)
            self._export(experiment, counts)
            found = verdict(experiment, counts, scores)
            if found.action == "rollback":
                new = experiment.with_status("rolled_back", found.reason)
            elif found.action == "ramp":
                outcomes = counts["treatment"].get("labels" if experiment.model == "fraud" else "outcomes", 0)
                new = experiment.ramped(found.share, int(outcomes))
                new = new.with_status("running", found.reason)
            else:
                continue
            try:
                await self.store.replace(experiment, new)
            except ExperimentConflict:
                continue  # another worker applied it, or an operator changed it meanwhile
            self.arms.adopt(new)  # no await since the write: no decision of this worker sees the old arms
            self.metrics.experiment_share.labels(new.model, new.experiment_id).set(new.share if new.running else 0.0)
            kind = "experiment_rolled_back" if found.action == "rollback" else "experiment_ramped"
            log.warning("%s %s: %s", kind, experiment.experiment_id, found.reason)
            now = self.clock()
            event = ExperimentEvent(kind, new.model, new.experiment_id, new.treatment,
                                    new.share if new.running else 0.0, found.reason, self.by, now)
            emits.append(Emit(self.settings.topics.model_events, new.model.encode(), event.to_json()))
            if found.action == "rollback":
                emits.extend(drift_emits(self.settings, self.metrics, [self._signal(experiment, found, counts, now)]))
        return emits

    def _export(self, experiment: Experiment, counts: dict) -> None:
        self.metrics.experiment_share.labels(experiment.model, experiment.experiment_id).set(experiment.share)
        for row in arm_rows(experiment.model, counts, {}):
            for name, figure in row.figures.items():
                if figure is not None:
                    value, (low, high) = figure
                    for bound, v in (("value", value), ("low", low), ("high", high)):
                        self.metrics.experiment_figure.labels(experiment.experiment_id, row.arm, name, bound).set(v)

    @staticmethod
    def _signal(experiment: Experiment, found: Verdict, counts: dict, now: float) -> DriftSignal:
        return DriftSignal(
            signal_id=f"guardrail-{experiment.experiment_id}", target=found.target,
            name=f"{experiment.model}:{experiment.experiment_id}:treatment",
            detector=f"guardrail(z={experiment.guardrails.z:g})", statistic=round(found.difference, 6),
            threshold=found.bound, severity="critical",
            action=f"rolled back experiment {experiment.experiment_id}: users back on control",
            model_version=experiment.treatment, detected_at=now,
            observations=int(counts["treatment"].get("n", 0)))
