"""The fraud engine: features -> classifier + anomaly + rules -> decision. Pure apart from learning.

The worker, the replay harness and the evaluate command all score through ``FraudEngine.score``
and learn through ``FraudEngine.learn_label``: there is one implementation of the fraud path.

Blending. Until the classifier has seen enough positive labels its probability means little, so
its weight grows with the positives learned (``warmup_positives``); the rest of the base score
comes from the anomaly rank. The rule set acts on top (``online_models.rules``): bumps compound
onto the score, forcing rules set the outcome, and every decision names the rule set's version and
the rules that fired, shadow ones included. The decision score is that blend through an online
calibration (``online_models.calibration``), so that the thresholds read it as the probability of
fraud it claims to be.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from online_models.anomaly import AnomalyScorer
from online_models.bounds import bounded
from online_models.calibration import OnlinePlatt
from online_models.champion import ChampionChallenger
from online_models.decisions import decide, reasons
from online_models.drift import DriftMonitor
from online_models.fraud_model import FraudClassifier
from online_models.labels_learned import LabelsLearned
from online_models.rule_watch import RuleRateWatch
from online_models.rules import RuleSet, default_rule_set, rule_names
from schemas.errors import StreamsenseError
from schemas.internal_records import Snapshot
from schemas.records import DriftSignal, FraudDecision, RulesApplied, Transaction, unknown_value_reasons
from schemas.settings import Settings
from streams.fraud_features import FeatureConfig, MerchantUpdate, UserState, merchant_label_update, transaction_features

MODEL_NAME = "lr+hst+rules"


class ScoreRejected(StreamsenseError):
    """The models gave a score or a reason that is not a finite number: the transaction becomes a
    ``score`` dead letter (the processors map any scoring failure to that stage), never a decision."""


@dataclass(frozen=True)
class Scored:
    decision: FraudDecision
    user_state: UserState
    merchant_update: MerchantUpdate
    snapshot: Snapshot  # what learn_label needs when the label comes
    late: bool


def rule_env(x: Mapping[str, float], tx: Transaction) -> dict:
    """What a rule's condition can read: the features, and the event's own fields (which win over a
    producer's extra feature of the same name)."""
    return {**x, "user_id": tx.user_id, "merchant_id": tx.merchant_id, "country": tx.country,
            "currency": tx.currency, "channel": tx.channel, "device_id": tx.device_id or ""}


class FraudEngine:
    """Score transactions and learn from delayed labels.

    Parameters
    ----------
    review_threshold, decline_threshold
        Scores at or above these are reviewed / declined.
    features
        Windows and lateness of the feature folds.
    seed
        Seeds the anomaly scorer.
    classifier, anomaly
        The champion classifier and the anomaly scorer (fresh ones by default).
    warmup_positives
        Positive labels after which the classifier gets its full weight.
    classifier_weight
        The classifier's share of the base score once warmed up.
    label_memory_s
        How long (event time) a learned label is remembered, so that a copy of it is not learned
        again (online_models.labels_learned).
    rules
        The rule set (the shipped default when None); a worker replaces it when one is published.
    rule_watch
        Switches a rule that fires far more than its backtest said to shadow (online_models.rule_watch).
    """

    def __init__(self, *, review_threshold: float = 0.5, decline_threshold: float = 0.85,
                 features: FeatureConfig = FeatureConfig(), seed: int = 42,
                 classifier: FraudClassifier | None = None, anomaly: AnomalyScorer | None = None,
                 warmup_positives: int = 100, classifier_weight: float = 0.8,
                 label_memory_s: float = 45 * 86400.0, rules: RuleSet | None = None,
                 rule_watch: RuleRateWatch | None = None) -> None:
        self.review_threshold = review_threshold
        self.decline_threshold = decline_threshold
        self.features = features
        self.anomaly = anomaly or AnomalyScorer(seed=seed)
        self.warmup_positives = warmup_positives
        self.classifier_weight = classifier_weight
        self.rules = rules or default_rule_set()
        self.rule_watch = rule_watch or RuleRateWatch()
        self.drift = DriftMonitor(MODEL_NAME)
        # A drift on error or label rate starts a fresh classifier in shadow; it replaces the
        # champion when it is more accurate on the same labels (online_models.champion).
        self.lifecycle = ChampionChallenger(classifier or FraudClassifier(), monitor=self.drift,
                                            champion_name="lr-1", challenger_name="lr")
        self.labels_learned = LabelsLearned(label_memory_s)
        self.calibration = OnlinePlatt()
        self._signals: list[DriftSignal] = []

    @classmethod
    def from_settings(cls, settings: Settings, **models) -> FraudEngine:
        """The engine the settings describe; ``models`` (classifier, anomaly) replace fresh ones."""
        return cls(review_threshold=settings.review_threshold, decline_threshold=settings.decline_threshold,
                   features=FeatureConfig.from_settings(settings), seed=settings.seed,
                   label_memory_s=settings.snapshot_ttl_s + settings.max_past_s + settings.max_future_s,
                   rule_watch=RuleRateWatch(settings.rules_watch_window, settings.rules_watch_min_seen), **models)

    @property
    def classifier(self) -> FraudClassifier:
        """The champion: the classifier that decides."""
        return self.lifecycle.serving.model

    def take_signals(self) -> list[DriftSignal]:
        """Drift signals raised since the last call."""
        signals, self._signals = self._signals, []
        return signals

    def models(self) -> dict:
        """What a checkpoint holds: the learned parts (the drift monitor is an observer, not a model)."""
        return {"lifecycle": self.lifecycle, "anomaly": self.anomaly, "labels": self.labels_learned,
                "calibration": self.calibration}

    def load(self, models: dict) -> None:
        self.lifecycle, self.anomaly = models["lifecycle"], models["anomaly"]
        # A checkpoint from before labels were remembered: none are (a copy in flight may be learned twice).
        self.labels_learned = models.get("labels") or LabelsLearned(self.labels_learned.keep_s)
        # A checkpoint from before scores were calibrated: an identity calibration, learning from here.
        self.calibration = models.get("calibration") or OnlinePlatt()
        self.lifecycle.monitor = self.drift  # the monitor stays this worker's (it is not a model)

    @property
    def model_version(self) -> str:
        """Champion generation, labels it learned, events the anomaly model saw: each decision names
        the model state that made it."""
        return f"{self.lifecycle.generation}.{self.classifier.n_learned}.{self.anomaly.n_seen}"

    def score(self, tx: Transaction, user_state: UserState | None, merchant: Mapping[str, float], *,
              decided_at: float, degraded: bool = False) -> Scored:
        result = transaction_features(tx, user_state, merchant, self.features)
        x = result.features
        weight = self.classifier_weight * min(1.0, self.classifier.n_positives / self.warmup_positives)
        p = self.classifier.predict_proba_one(x)[True] if weight > 0 else 0.0
        odd = self.anomaly.score_one(x)
        rules = self.rules
        found = rules.evaluate(rule_env(x, tx))
        blend = found.apply(weight * p + (1.0 - weight) * 0.6 * odd)
        score = self.calibration.predict(blend)  # a separate last step: the blend made a probability
        flags = [name for name, on in (("degraded_state", degraded), ("late_event", result.late)) if on]
        contributions = self.classifier.contributions(x) if weight > 0 else {}
        if not all(map(math.isfinite, (blend, score, odd, *contributions.values()))):
            raise ScoreRejected(f"non-finite model output for {tx.event_id!r} (score {score!r}, anomaly {odd!r})")
        decision = FraudDecision(
            event_id=tx.event_id, score=round(score, 6),
            decision=found.decide(decide(score, self.review_threshold, self.decline_threshold)),
            reasons=reasons(contributions, found.hits, odd, flags=flags) + unknown_value_reasons(tx), model=MODEL_NAME,
            model_version=self.model_version, degraded=degraded, late=result.late, latency_ms=0.0,
            decided_at=decided_at, rules=RulesApplied(rules.version, rule_names(found.hits), rule_names(found.shadow)),
        )
        # The detectors see bounded values too: an ADWIN fed 1e308 would hold inf (and the checkpoint with it).
        # The score detector watches the blend: the calibration moving as it learns is not drift.
        self._signals.extend(self.drift.observe_decision(bounded(x), blend, tx.ts, decision.model_version,
                                                         score_settled=weight >= self.classifier_weight))
        self.rules, switched = self.rule_watch.observe(rules, found, tx.ts, decision.model_version)
        self._signals.extend(switched)
        # The merchant by pseudonym: snapshots wait in Redis (and travel to the learner) for days.
        snapshot = Snapshot(x, self.merchant_ref(tx.merchant_id), tx.ts, decision.score, blend=blend,
                            calibration=self.calibration.params())
        return Scored(decision, result.user_state, result.merchant_update, snapshot, result.late)

    def merchant_ref(self, merchant_id: str) -> str:
        """How state and snapshots name a merchant: its keyed pseudonym, never the raw id."""
        return self.features.pseudonyms.of(merchant_id)

    def label_effect(self, snapshot: Snapshot, is_fraud: bool) -> MerchantUpdate:
        """What a label changes in the merchant's label counters (whoever learns the model)."""
        assumed = snapshot.assumed_legitimate
        if assumed and not is_fraud:
            return MerchantUpdate({})
        return merchant_label_update(bool(is_fraud), correction=assumed)

    def learn_label(self, snapshot: Snapshot, is_fraud: bool, *, event_id: str,
                    observed: bool = True) -> MerchantUpdate:
        """Learn from the features as they were at decision time; returns the merchant's label counters.

        A snapshot ``assumed_legitimate`` was already learned as legitimate when its label horizon passed.
        A chargeback arriving after that is still learned (as a positive: online models cannot
        unlearn, so this corrects by adding the missing example); a confirmation teaches nothing new.
        ``observed=False`` (a label assumed at the horizon) teaches the model but not the drift
        detectors of error and label rate, which watch real labels only.
        A label already learned for this event (a copy: labels are delivered at least once) teaches
        nothing and changes no counter.
        """
        if not self.labels_learned.first(event_id, observed, snapshot.ts):
            return MerchantUpdate({})
        effect = self.label_effect(snapshot, is_fraud)
        if snapshot.assumed_legitimate and not is_fraud:
            return effect
        if snapshot.blend is not None:  # snapshots of earlier releases lack it
            self.calibration.learn(snapshot.blend, bool(is_fraud))
        self._signals.extend(self.lifecycle.learn_one(snapshot.features, bool(is_fraud), event_id, snapshot.ts,
                                                      measure=observed))
        return effect

    def learn_unlabelled(self, x: Mapping[str, float]) -> None:
        """What normal looks like: the anomaly model learns every decided event once, label or not."""
        self.anomaly.learn_one(x)
