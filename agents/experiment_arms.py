"""Which model serves a user while an experiment runs, and what each arm's decisions and labels were.

Every worker follows the experiments in Redis (agents.stores.experiments) on the same 1 s timer that
follows the model registry (agents.lifecycle_timers), so a start, a ramp or a stop reaches every
worker within about a second. A user's arm is the same on every worker (online_models.experiments).

- fraud: the control engine is the worker's (the serving checkpoint, learning as usual); the
  treatment is a checkpoint version, loaded once, verified like any checkpoint and never learning,
  or the control engine's challenger (served only while one exists). Feature state is the same
  for both arms: only the models differ. A worker that cannot serve the treatment (its checkpoint
  is refused) leaves its decisions out of the experiment rather than name an arm it did not serve;
- recommendations: the treatment is a strategy (``popular``, ``personal``, ``explore:SHARE``) over
  the same learned recommender.

Decisions and labels are tallied per arm here and added to Redis by ``flush`` on the same timer
(one round trip a second, not one per batch); a worker that dies loses at most that second's tally.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Mapping

from redis.exceptions import RedisError

from agents.metrics import Metrics
from agents.stores.checkpoints import RedisCheckpoints
from agents.stores.experiments import ExperimentStore
from online_models.champion import ChampionChallenger
from online_models.checkpoints import CheckpointRejected
from online_models.engine import FraudEngine, Scored
from online_models.experiments import REVIEW_COST, TREATMENT, Experiment
from online_models.reco_engine import RecoEngine
from schemas.internal_records import Snapshot
from schemas.records import FraudDecision, Recommendation, Transaction
from schemas.settings import Settings
from streams.fraud_features import UserState

log = logging.getLogger(__name__)
ROLE = "fraud"


class ExperimentArms:
    def __init__(self, settings: Settings, store: ExperimentStore | None = None,
                 checkpoints: RedisCheckpoints | None = None, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.store = store  # None: no experiments (tests and tools that build a path alone)
        self.checkpoints = checkpoints
        self.running: dict[str, Experiment] = {}  # model -> its running experiment
        self._versions: dict[int, FraudEngine | None] = {}  # checkpoint version -> its engine (None: refused)
        self._challenger: tuple[object, FraudEngine] | None = None  # (challenger model, engine serving it)
        self.counts: Counter = Counter()  # (experiment, arm, counter) -> amount, not yet in Redis
        self.scores: list[tuple[str, str, float, bool]] = []

    async def follow(self, control: FraudEngine) -> None:
        """Read the experiments; load a fraud treatment's checkpoint the first time it is needed."""
        if self.store is None:
            return
        running = {e.model: e for e in await self.store.all() if e.running}
        fraud = running.get("fraud")
        if fraud is not None and fraud.treatment.isdigit() and int(fraud.treatment) not in self._versions:
            self._versions[int(fraud.treatment)] = await self._load(int(fraud.treatment))
        for model in set(self.running) | set(running):
            before, now = self.running.get(model), running.get(model)
            if before != now:
                log.info("experiment on %s: %s", model, "none" if now is None else
                         f"{now.experiment_id} treatment {now.treatment} at {now.share:g} %")
        self.running = running

    def adopt(self, experiment: Experiment) -> None:
        """Route by ``experiment`` as changed by this worker (a rollback or ramp it applied), before
        the next follow reads it back."""
        if experiment.running:
            self.running[experiment.model] = experiment
        elif self.running.get(experiment.model, experiment).experiment_id == experiment.experiment_id:
            self.running.pop(experiment.model, None)

    async def _load(self, version: int) -> FraudEngine | None:
        try:
            models, _ = await self.checkpoints.load(ROLE, version)
            engine = FraudEngine.from_settings(self.settings)
            engine.load(models)  # type: ignore[arg-type]
        except (CheckpointRejected, KeyError, TypeError, AttributeError) as exc:
            log.error("experiment treatment %s v%d cannot be served here (%s): its users are decided by "
                      "control, outside the experiment", ROLE, version, exc)
            return None
        return engine

    def _treatment(self, experiment: Experiment, control: FraudEngine) -> FraudEngine | None:
        if experiment.treatment != "challenger":
            return self._versions.get(int(experiment.treatment))
        shadow = control.lifecycle.shadow
        if shadow is None:
            return None
        if self._challenger is None or self._challenger[0] is not shadow.model:
            engine = FraudEngine.from_settings(self.settings)
            engine.load({"lifecycle": ChampionChallenger(shadow.model, champion_name=shadow.name),
                         "anomaly": control.anomaly})
            self._challenger = (shadow.model, engine)
        return self._challenger[1]

    def score(self, control: FraudEngine, tx: Transaction, user_state: UserState | None,
              merchant: Mapping[str, float], *, decided_at: float, degraded: bool = False) -> Scored:
        """``control.score``, by the user's arm's engine, the decision and snapshot naming the arm."""
        experiment = self.running.get("fraud")
        if experiment is None:
            return control.score(tx, user_state, merchant, decided_at=decided_at, degraded=degraded)
        arm = experiment.arm(tx.user_id)
        engine = control if arm != TREATMENT else self._treatment(experiment, control)
        if engine is None:  # the treatment cannot be served here: outside the experiment
            return control.score(tx, user_state, merchant, decided_at=decided_at, degraded=degraded)
        engine.rules = control.rules  # the arms differ by model only: both decide with the published rule set
        if engine is not control:
            engine.rules = control.rules  # the experiment compares models: both arms use the published rule set
        scored = engine.score(tx, user_state, merchant, decided_at=decided_at, degraded=degraded)
        if engine is not control:
            engine.take_signals()  # the drift detectors watch the control's traffic; a treatment's are dropped
        tag = (experiment.experiment_id, arm)
        return dataclasses.replace(
            scored, decision=dataclasses.replace(scored.decision, experiment=tag[0], arm=tag[1]),
            snapshot=dataclasses.replace(scored.snapshot, arm=tag))

    def decided(self, decisions: Iterable[FraudDecision]) -> None:
        """Tally new decisions per arm (a redelivered decision is not new: the caller leaves it out)."""
        for d in decisions:
            if d.experiment is not None:
                self.counts[(d.experiment, d.arm, "n")] += 1
                self.counts[(d.experiment, d.arm, d.decision)] += 1
                self.metrics.experiment_outcomes.labels(d.experiment, d.arm, d.decision).inc()

    def labelled(self, snapshot: Snapshot, is_fraud: bool) -> None:
        """Tally the outcome of a decision made in an experiment -- a label, or legitimate by default at
        the label horizon --: confusion counts at the review threshold (review or decline flags), and
        the cost (a missed fraud costs its amount, a review ``REVIEW_COST``). A chargeback after the
        horizon corrects the legitimate outcome counted then; a confirmation then changes nothing."""
        if snapshot.arm is None or (snapshot.assumed_legitimate and not is_fraud):
            return
        experiment_id, arm = snapshot.arm
        tally = self.counts
        flagged = snapshot.score >= self.settings.review_threshold
        declined = snapshot.score >= self.settings.decline_threshold
        review = REVIEW_COST if flagged and not declined else 0.0
        cost = (float(snapshot.features.get("amount", 0.0)) if is_fraud and not flagged else 0.0) + review
        if snapshot.assumed_legitimate:  # counted as legitimate (review cost only) at the horizon: correct it
            tally[(experiment_id, arm, "fp" if flagged else "tn")] -= 1
            tally[(experiment_id, arm, "cost")] -= review
            tally[(experiment_id, arm, "cost2")] -= review * review
        else:
            tally[(experiment_id, arm, "labels")] += 1
        tally[(experiment_id, arm, ("tp" if flagged else "fn") if is_fraud else ("fp" if flagged else "tn"))] += 1
        tally[(experiment_id, arm, "cost")] += cost
        tally[(experiment_id, arm, "cost2")] += cost * cost
        self.scores.append((experiment_id, arm, snapshot.score, is_fraud))

    def reco(self, control: RecoEngine, user_id: str) -> tuple[RecoEngine, Experiment | None, str | None]:
        """The engine that answers ``user_id``, its experiment and arm (None, None outside one)."""
        experiment = self.running.get("reco")
        if experiment is None:
            return control, None, None
        arm = experiment.arm(user_id)
        if arm != TREATMENT:
            return control, experiment, arm
        strategy, _, share = experiment.treatment.partition(":")
        engine = RecoEngine(min_history=10**9 if strategy == "popular" else control.min_history,
                            explore_share=float(share) if share else (0.0 if strategy == "personal" else
                                                                      control.explore_share),
                            seed=control.seed, recommender=control.recommender, pseudonyms=control.pseudonyms)
        return engine, experiment, arm

    def answered(self, rec: Recommendation) -> None:
        if rec.experiment is not None:
            self.counts[(rec.experiment, rec.arm, "n")] += 1
            self.counts[(rec.experiment, rec.arm, rec.strategy)] += 1
            self.metrics.experiment_outcomes.labels(rec.experiment, rec.arm, rec.strategy).inc()

    async def flush(self) -> None:
        """Add the tallies to Redis; kept for the next tick if Redis does not answer."""
        if self.store is None or not (self.counts or self.scores):
            return
        counts, scores = self.counts, self.scores
        self.counts, self.scores = Counter(), []
        try:
            await self.store.add(counts, scores)
        except (RedisError, OSError):
            self.counts.update(counts)
            self.scores[:0] = scores
            raise
