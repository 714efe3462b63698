"""Prequential evaluation: every event is scored before its label is learned, with a label delay.

The models under evaluation are the ones the workers run (``FraudEngine`` through
``FraudReplay``, ``FraudClassifier``, ``RecoEngine`` through ``RecoReplay``) next to River's
reference pipelines, side by side over one pass of the same stream.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from river import anomaly, compose, forest, linear_model, metrics, optim, preprocessing, reco

from online_models.champion import ChampionChallenger
from online_models.drift import DriftMonitor
from online_models.engine import FraudEngine
from online_models.fraud_model import FraudClassifier
from online_models.reco_engine import RecoEngine
from online_models.reco_replay import RankingScores, RecoReplay
from online_models.replay import FraudReplay
from schemas.records import DriftSignal, FraudLabel, Interaction, Transaction

NEVER = float("inf")


@dataclass(frozen=True)
class Event:
    """One labelled event: raw numeric features, the transaction when there is one, the truth."""

    x: dict
    y: bool
    ts: float
    tx: Transaction | None = None


@dataclass(frozen=True)
class LabelDelay:
    """How long after its event a label becomes known: none, fixed seconds, or drawn (exponential)."""

    mode: str = "none"
    seconds: float = 0.0
    seed: int = 42

    @classmethod
    def parse(cls, text: str, seed: int = 42) -> LabelDelay:
        """
        >>> LabelDelay.parse("none"), LabelDelay.parse("fixed:3600").seconds, LabelDelay.parse("drawn:60").mode
        (LabelDelay(mode='none', seconds=0.0, seed=42), 3600.0, 'drawn')
        """
        mode, _, seconds = text.partition(":")
        if mode not in ("none", "fixed", "drawn") or (mode != "none" and not seconds):
            raise ValueError(f"label delay must be none, fixed:SECONDS or drawn:MEAN_SECONDS; got {text!r}")
        return cls(mode, float(seconds or 0.0), seed)

    def sampler(self) -> Callable[[], float]:
        rng = random.Random(self.seed)
        if self.mode == "drawn":
            return lambda: rng.expovariate(1.0 / self.seconds)
        return lambda: self.seconds


# -- metrics ---------------------------------------------------------------------------------
def average_precision(labels: list[bool], scores: list[float]) -> float:
    """Area under the precision-recall curve (average precision, ties broken pessimistically).

    >>> average_precision([True, False, True, False], [0.9, 0.8, 0.7, 0.1])
    0.8333...
    """
    ranked = sorted(zip(scores, labels, strict=True), key=lambda sl: (-sl[0], sl[1]))
    positives = sum(labels)
    if not positives:
        return float("nan")
    hits, total = 0, 0.0
    for rank, (_, label) in enumerate(ranked, start=1):
        if label:
            hits += 1
            total += hits / rank
    return total / positives


def total_cost(missed_fraud_amount: float, flagged: int, review_cost: float) -> float:
    """The cost figure of a run: the amount of fraud let through, plus ``review_cost`` per event
    reviewed or declined (someone looks at each)."""
    return round(missed_fraud_amount + flagged * review_cost, 2)


def exact_rocauc(labels, scores) -> float:
    """ROCAUC from ranks (ties share their mean rank); NaN with one class only. River's
    ``metrics.ROCAUC`` reads the curve at 10 thresholds (its published figures use it), which
    cannot tell apart scores that sit under 0.1 (as probabilities do at a 1 % fraud rate).

    >>> exact_rocauc([False, True, False, True], [0.01, 0.02, 0.03, 0.04])
    0.75
    """
    y, p = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=float)
    positives, negatives = int(y.sum()), int((~y).sum())
    if not positives or not negatives:
        return math.nan
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inverse, weights=ranks) / counts)[inverse]
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def rocauc_interval(labels, scores, rounds: int = 200, seed: int = 42) -> list[float]:
    """A 95 % bootstrap interval of the exact ROCAUC: events drawn with replacement, positives and
    negatives apart (each draw keeps the counts of both), ``rounds`` times. With a handful of
    positives it is wide, and says how little the point figure can claim.

    >>> rocauc_interval([False] * 90 + [True] * 10, [i / 100 for i in range(100)])
    [1.0, 1.0]
    """
    y, p = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=float)
    pos, neg = p[y], p[~y]
    if not len(pos) or not len(neg):
        return [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    truth = np.r_[np.ones(len(pos), dtype=bool), np.zeros(len(neg), dtype=bool)]
    draws = [exact_rocauc(truth, np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]) for _ in range(rounds)]
    return [round(float(v), 4) for v in np.percentile(draws, [2.5, 97.5])]


def reliability(labels: list[bool], scores: list[float], bins: int = 10) -> list[dict]:
    """The reliability curve: per equal-width score bin, the mean score, the observed positive rate
    and the number of events (empty bins left out).

    >>> reliability([False, True, False, True], [0.1, 0.15, 0.8, 0.9], bins=2)
    [{'score': 0.125, 'observed': 0.5, 'events': 2}, {'score': 0.85, 'observed': 0.5, 'events': 2}]
    """
    sums = [[0.0, 0, 0] for _ in range(bins)]
    for y, s in zip(labels, scores, strict=True):
        acc = sums[min(int(s * bins), bins - 1)]
        acc[0] += s
        acc[1] += y
        acc[2] += 1
    return [{"score": round(total / n, 6), "observed": round(hits / n, 6), "events": n}
            for total, hits, n in sums if n]


def expected_calibration_error(labels: list[bool], scores: list[float], bins: int = 10) -> float:
    """ECE: the events' average gap between mean score and observed rate over equal-width bins.

    >>> expected_calibration_error([False, True, False, True], [0.1, 0.15, 0.8, 0.9], bins=2)
    0.3625
    """
    curve = reliability(labels, scores, bins)
    n = sum(point["events"] for point in curve)
    return sum(point["events"] * abs(point["score"] - point["observed"]) for point in curve) / n if n else math.nan


@dataclass
class BinaryScores:
    """Prequential figures of one configuration on a binary stream."""

    review: float
    decline: float
    review_cost: float
    rocauc: metrics.ROCAUC = field(default_factory=metrics.ROCAUC)
    logloss: metrics.LogLoss = field(default_factory=metrics.LogLoss)
    accuracy: metrics.Accuracy = field(default_factory=metrics.Accuracy)
    labels: list[bool] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    missed_fraud_amount: float = 0.0
    reviewed: int = 0
    seconds: float = 0.0

    def update(self, y: bool, score: float, amount: float) -> None:
        self.rocauc.update(y, score)
        self.logloss.update(y, {True: min(max(score, 1e-15), 1 - 1e-15)})
        self.accuracy.update(y, score >= 0.5)
        self.labels.append(y)
        self.scores.append(score)
        if score < self.review and y:
            self.missed_fraud_amount += amount
        self.reviewed += score >= self.review

    def at(self, threshold: float) -> tuple[float, float]:
        flagged = [y for y, s in zip(self.labels, self.scores, strict=True) if s >= threshold]
        positives = sum(self.labels)
        precision = sum(flagged) / len(flagged) if flagged else float("nan")
        return precision, (sum(flagged) / positives if positives else float("nan"))

    def summary(self) -> dict:
        n = len(self.labels)
        p_review, r_review = self.at(self.review)
        p_decline, r_decline = self.at(self.decline)
        return {
            "events": n, "rocauc": self.rocauc.get(), "rocauc_exact": exact_rocauc(self.labels, self.scores),
            "rocauc_ci95": rocauc_interval(self.labels, self.scores),
            "pr_auc": average_precision(self.labels, self.scores),
            "log_loss": self.logloss.get(), "accuracy": self.accuracy.get(),
            "ece": expected_calibration_error(self.labels, self.scores),
            "precision_at_review": p_review, "recall_at_review": r_review,
            "precision_at_decline": p_decline, "recall_at_decline": r_decline,
            "missed_fraud_amount": round(self.missed_fraud_amount, 2),
            "review_cost": round(self.reviewed * self.review_cost, 2),
            "total_cost": total_cost(self.missed_fraud_amount, self.reviewed, self.review_cost),
            "us_per_event": self.seconds / n * 1e6 if n else float("nan"),
        }


# -- configurations: score before learning; learn when the label is known ---------------------
class Config:
    name = ""
    needs_transactions = False

    def score(self, index: int, event: Event) -> float:
        raise NotImplementedError

    def learn(self, index: int, event: Event) -> None:
        """Called when the label of ``event`` becomes known."""

    def details(self) -> dict:
        """Figures of the configuration itself, added to its summary."""
        return {}

    def signals(self) -> list[DriftSignal]:
        """Drift signals the configuration raised (for a report's timeline)."""
        return []


class DefaultFraud(Config):
    """The worker's fraud engine: features, classifier, anomaly rank and rules."""

    name, needs_transactions = "default", True

    def __init__(self, settings) -> None:
        self.replay = FraudReplay(FraudEngine.from_settings(settings), label_horizon_s=NEVER)

    def score(self, index, event):
        return self.replay.transaction(event.tx).score

    def learn(self, index, event):
        self.replay.label(FraudLabel(event.tx.event_id, event.y, event.ts))

    def signals(self):
        return self.replay.drift_signals


class Classifier(Config):
    """The worker's champion classifier alone, on the raw features (plain classification streams)."""

    name = "classifier"

    def __init__(self, settings) -> None:
        self.model = FraudClassifier()

    def score(self, index, event):
        return self.model.predict_proba_one(event.x)[True]

    def learn(self, index, event):
        self.model.learn_one(event.x, event.y, event_id=str(index))


class RiverLogReg(Config):
    """River's reference: StandardScaler | LogisticRegression."""

    name = "river-lr"

    def __init__(self, settings) -> None:
        self.model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())

    def score(self, index, event):
        return self.model.predict_proba_one(event.x).get(True, 0.0)

    def learn(self, index, event):
        self.model.learn_one(event.x, event.y)


class RiverHST(Config):
    """River's documented anomaly pipeline: MinMaxScaler | HalfSpaceTrees(seed=42), label-free."""

    name = "river-hst"

    def __init__(self, settings) -> None:
        self.model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=42))

    def score(self, index, event):
        score = self.model.score_one(event.x)
        self.model.learn_one(event.x)
        return score


class Lifecycle(Config):
    """The champion classifier with drift-triggered challengers (River's ARF), promoted on merit."""

    name = "lifecycle"

    def __init__(self, settings) -> None:
        self.model = ChampionChallenger(
            FraudClassifier(), lambda: forest.ARFClassifier(n_models=10, seed=settings.seed),
            challenger_name="arf", monitor=DriftMonitor("classifier", features=(), grace=500))
        self.raised: list[DriftSignal] = []

    def score(self, index, event):
        return self.model.predict_proba_one(event.x)[True]

    def learn(self, index, event):
        self.raised += self.model.learn_one(event.x, event.y, index, event.ts)

    def signals(self):
        return self.raised

    def details(self) -> dict:
        return {"serving_model": self.model.serving.name, "generation": self.model.generation,
                "model_events": self.model.events[:10]}


class RiverARF(Config):
    """River's adaptive random forest (10 trees), for reference."""

    name = "river-arf"

    def __init__(self, settings) -> None:
        self.model = forest.ARFClassifier(n_models=10, seed=settings.seed)

    def score(self, index, event):
        return self.model.predict_proba_one(event.x).get(True, 0.0)

    def learn(self, index, event):
        self.model.learn_one(event.x, event.y)


class NoChange(Config):
    """The no-change baseline: predict the previous label."""

    name = "no-change"

    def __init__(self, settings) -> None:
        self.last = False

    def score(self, index, event):
        return float(self.last)

    def learn(self, index, event):
        self.last = event.y


CONFIGS: dict[str, type[Config]] = {c.name: c for c in (DefaultFraud, Classifier, RiverLogReg, RiverHST, Lifecycle,
                                                        RiverARF, NoChange)}


@dataclass
class Trace:
    """What a report plots: each configuration's scores in event order, the events' times, the
    drift signals and model events (promotions) per configuration, the ranking checkpoints."""

    scores: dict[str, BinaryScores] = field(default_factory=dict)
    ts: list[float] = field(default_factory=list)
    signals: dict[str, list[DriftSignal]] = field(default_factory=dict)
    model_events: dict[str, list[dict]] = field(default_factory=dict)
    ranking: list[tuple[int, int, dict[str, int]]] = field(default_factory=list)  # ratings, ranked, hits
    k: int = 10


def evaluate_binary(events: Iterable[Event], config_names: list[str], settings, *, delay: LabelDelay,
                    review_cost: float = 5.0, every: int = 0,
                    on_checkpoint: Callable[[int, dict], None] | None = None,
                    trace: Trace | None = None) -> dict[str, dict]:
    """One pass over ``events``; each configuration scores every event before its label is known.
    ``trace``, when given, receives what a report plots."""
    configs = [CONFIGS[name](settings) for name in config_names]
    scores = {c.name: BinaryScores(settings.review_threshold, settings.decline_threshold, review_cost)
              for c in configs}
    pending: list[tuple[float, int, Event]] = []
    draw = delay.sampler()
    index = -1
    for index, event in enumerate(events):
        while pending and pending[0][0] <= event.ts:
            _, i, labelled = heapq.heappop(pending)
            _learn_all(configs, scores, i, labelled)
        amount = event.tx.amount if event.tx else 0.0
        if trace is not None:
            trace.ts.append(event.ts)
        for config in configs:
            started = time.perf_counter()
            score = config.score(index, event)
            scores[config.name].seconds += time.perf_counter() - started
            scores[config.name].update(event.y, score, amount)
        if delay.mode == "none":
            _learn_all(configs, scores, index, event)
        else:
            heapq.heappush(pending, (event.ts + draw(), index, event))
        if every and on_checkpoint and (index + 1) % every == 0:
            on_checkpoint(index + 1, {name: s.summary() for name, s in scores.items()})
    if trace is not None:
        trace.scores.update(scores)
        trace.signals.update({c.name: c.signals() for c in configs})
        trace.model_events.update({c.name: c.details().get("model_events", []) for c in configs})
    return {c.name: {**scores[c.name].summary(), **c.details()} for c in configs}


def _learn_all(configs: list[Config], scores: dict[str, BinaryScores], index: int, event: Event) -> None:
    for config in configs:
        started = time.perf_counter()
        config.learn(index, event)
        scores[config.name].seconds += time.perf_counter() - started


# -- ratings ---------------------------------------------------------------------------------
def river_rating_model() -> preprocessing.PredClipper:
    """The BiasedMF configuration of River's MovieLens 100K documentation, clipped to 1..5."""
    return preprocessing.PredClipper(
        regressor=reco.BiasedMF(
            n_factors=10, bias_optimizer=optim.SGD(0.025), latent_optimizer=optim.SGD(0.05),
            weight_initializer=optim.initializers.Zeros(),
            latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=73), l2_bias=0.0, l2_latent=0.0),
        y_min=1, y_max=5)


def evaluate_ratings(ratings: Iterable[tuple[str, str, float, float]], settings, *, k: int = 10,
                     every: int = 0, on_checkpoint: Callable[[int, dict], None] | None = None,
                     trace: Trace | None = None, trace_every: int = 200) -> dict:
    """MAE / RMSE of River's documented BiasedMF (predictions clipped to 1..5), and hit-rate@K /
    NDCG@K of the worker's recommender against popularity, both prequential, in time order.
    ``trace`` receives the ranking counts every ``trace_every`` ratings."""
    if trace is not None:
        trace.k = k
    model = river_rating_model()
    mae, rmse = metrics.MAE(), metrics.RMSE()
    replay = RecoReplay(RecoEngine.from_settings(settings), settings.reco_trending_half_life_s)
    ranking = RankingScores(k)
    n = 0
    for n, (user, item, rating, ts) in enumerate(ratings, start=1):
        y_pred = model.predict_one({}, user=user, item=item)
        mae.update(rating, y_pred)
        rmse.update(rating, y_pred)
        model.learn_one({}, rating, user=user, item=item)
        it = Interaction(f"r{n}", ts, user, item, "rating", rating)
        replay.evaluate(it, ranking)
        replay.learn(it)
        if every and on_checkpoint and n % every == 0:
            on_checkpoint(n, {"mae": mae.get(), "rmse": rmse.get(), **ranking.summary()})
        if trace is not None and n % trace_every == 0:
            trace.ranking.append((n, ranking.evaluated, dict(ranking.hits)))
    return {"ratings": n, "mae": mae.get(), "rmse": rmse.get(), **ranking.summary()}


def take(events: Iterable, limit: int | None) -> Iterator:
    for n, event in enumerate(events):
        if limit is not None and n >= limit:
            return
        yield event
