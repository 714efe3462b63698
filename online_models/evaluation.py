"""Prequential evaluation: every event is scored before its label is learned, with a label delay.

The models under evaluation are the ones the workers run (``FraudEngine`` through
``FraudReplay``, ``FraudClassifier``, ``RecoEngine`` through ``RecoReplay``) next to River's
reference pipelines, side by side over one pass of the same stream.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from river import anomaly, compose, forest, linear_model, metrics, optim, preprocessing, reco

from online_models.champion import ChampionChallenger
from online_models.drift import DriftMonitor
from online_models.engine import FraudEngine
from online_models.fraud_model import FraudClassifier
from online_models.reco_engine import RecoEngine
from online_models.reco_replay import RankingScores, RecoReplay
from online_models.replay import FraudReplay
from schemas.records import FraudLabel, Interaction, Transaction

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
            "events": n, "rocauc": self.rocauc.get(), "pr_auc": average_precision(self.labels, self.scores),
            "log_loss": self.logloss.get(), "accuracy": self.accuracy.get(),
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


class DefaultFraud(Config):
    """The worker's fraud engine: features, classifier, anomaly rank and rules."""

    name, needs_transactions = "default", True

    def __init__(self, settings) -> None:
        self.replay = FraudReplay(FraudEngine.from_settings(settings), label_horizon_s=NEVER)

    def score(self, index, event):
        return self.replay.transaction(event.tx).score

    def learn(self, index, event):
        self.replay.label(FraudLabel(event.tx.event_id, event.y, event.ts))


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

    def score(self, index, event):
        return self.model.predict_proba_one(event.x)[True]

    def learn(self, index, event):
        self.model.learn_one(event.x, event.y, index, event.ts)

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


def evaluate_binary(events: Iterable[Event], config_names: list[str], settings, *, delay: LabelDelay,
                    review_cost: float = 5.0, every: int = 0,
                    on_checkpoint: Callable[[int, dict], None] | None = None) -> dict[str, dict]:
    """One pass over ``events``; each configuration scores every event before its label is known."""
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
                     every: int = 0, on_checkpoint: Callable[[int, dict], None] | None = None) -> dict:
    """MAE / RMSE of River's documented BiasedMF (predictions clipped to 1..5), and hit-rate@K /
    NDCG@K of the worker's recommender against popularity, both prequential, in time order."""
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
    return {"ratings": n, "mae": mae.get(), "rmse": rmse.get(), **ranking.summary()}


def take(events: Iterable, limit: int | None) -> Iterator:
    for n, event in enumerate(events):
        if limit is not None and n >= limit:
            return
        yield event
