"""River's own contract checks (``river.checks.yield_checks``) over every model we ship.

River chooses the data for its dataset checks by the kind of model; two of its choices cannot
run here, so each kind gets data of the same shape instead (``datasets_for``):

- classifiers (the fraud classifier, the champion/challenger wrapper): River's Phishing, as River
  does (it ships inside the package), plus a fraud-shaped stream in our own feature space;
- the anomaly scorer: the fraud-shaped stream. River would download CreditCard (no network here),
  and the scorer only looks at our behaviour features, which CreditCard's V1..V28 are not;
- the recommender, a River ranker whose target is chosen / not chosen: River gives a ranker
  dataset checks only when it is a regressor (rating targets), so it gets River's ranking routine
  and the general checks, and the dataset properties (inputs not mutated, pickling, clones,
  seeds) are asserted below through its own contract, ``learn_one(user, item, y, x)``;
- the drift detectors: River's ADWIN as ``online_models.drift`` configures it (general checks;
  River has no dataset checks for detectors). ``DriftMonitor`` itself is an observer over many
  detectors, not a River estimator, so no River check applies to it.

A check that cannot apply is skipped with its reason in ``SKIPS``, by name; none is dropped silently.
"""

from __future__ import annotations

import copy
import itertools
import pickle
import random
from unittest import mock

import numpy as np
import pytest
import river.checks
from river import base, datasets, drift, metrics
from river.reco.base import Ranker

from online_models.anomaly import AnomalyScorer
from online_models.champion import ChampionChallenger
from online_models.fraud_model import FraudClassifier
from online_models.recommender import OnlineRecommender


def fraud_stream(n: int, seed: int = 0) -> list[tuple[dict, bool]]:
    """Transactions as our engines see them: behaviour features, about 10 % fraud that looks odd."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fraud = rng.random() < 0.1
        x = {"log_amount": rng.gauss(6 if fraud else 3, 0.5), "user_count_1m": float(fraud * rng.randint(2, 9)),
             "user_count_1h": float(rng.randint(0, 3) + fraud * rng.randint(5, 20)),
             "new_country": float(fraud and rng.random() < 0.5), "new_device": float(rng.random() < 0.05 + fraud / 2),
             "user_amount_z": rng.gauss(4 if fraud else 0, 1), "secs_since_last": rng.uniform(10, 1e5)}
        out.append((x, fraud))
    return out


class Dataset:
    """A re-iterable dataset (River's checks iterate some of theirs more than once)."""

    def __init__(self, rows) -> None:
        self.rows = list(rows)

    def __iter__(self):
        return iter(self.rows)


def datasets_for(model, scale: int = 1):
    """Stands in for ``river.checks._yield_datasets`` (see the module docstring)."""
    if isinstance(model, (Ranker, base.DriftDetector)):
        return
    if model._supervised:  # the classifiers
        phishing = list(datasets.Phishing().take(200 * scale))
        yield Dataset(phishing)
        yield Dataset((x, np.bool_(y)) for x, y in phishing)  # as River does: numpy booleans as labels
    yield Dataset(fraud_stream(300 * scale))


MODELS = {
    "FraudClassifier": FraudClassifier(),
    "AnomalyScorer": AnomalyScorer(seed=42),
    "ChampionChallenger": ChampionChallenger(FraudClassifier()),
    "OnlineRecommender": OnlineRecommender(seed=42),
    "ADWIN": drift.ADWIN(delta=0.002, clock=32),  # as online_models.drift.Watch builds it
}

SKIPS = {
    ("AnomalyScorer", "check_roc_auc"): "check_roc_auc imports scikit-learn, which streamsense does not depend "
    "on; the same property (prequential ROCAUC >= 0.5, here >= 0.8) is asserted with river.metrics.ROCAUC by "
    "test_anomaly_scorer_ranks_anomalies_above_normal",
    ("ADWIN", "check_tags"): "check_tags reads river.base.Estimator._tags; ADWIN is a river.base.DriftDetector, "
    "which is not an estimator and has no tags",
}


def river_checks(name: str):
    model = MODELS[name]
    with mock.patch.object(river.checks, "_yield_datasets", datasets_for):
        checks = list(river.checks.yield_checks(model))
    counts: dict[str, int] = {}
    for check in checks:
        counts[check.__name__] = counts.get(check.__name__, 0) + 1
        yield pytest.param(name, check, id=f"{name}-{check.__name__}-{counts[check.__name__]}")


@pytest.mark.parametrize("name, check", [p for name in MODELS for p in river_checks(name)])
def test_river_contract(name: str, check) -> None:
    model = MODELS[name]
    reason = SKIPS.get((name, check.__name__))
    if reason:
        pytest.skip(reason)
    river_skips = model._unit_test_skips() if hasattr(model, "_unit_test_skips") else set()
    assert check.__name__ not in river_skips, f"{name} asks River to skip {check.__name__}: say why in SKIPS"
    check(model.clone())


def test_every_model_gets_the_dataset_checks_of_its_kind() -> None:
    """The stand-in datasets really reach the checks: each estimator that learns from (x, y) gets
    River's input-purity checks, the recommender River's ranking routine."""
    for name in ("FraudClassifier", "AnomalyScorer", "ChampionChallenger"):
        names = {p.values[1].__name__ for p in river_checks(name)}
        assert {"check_learn_one", "check_predict_one_pure", "check_no_state_aliasing_with_input",
                "check_bounded_memory_growth"} <= names, name
    assert "check_reco_routine" in {p.values[1].__name__ for p in river_checks("OnlineRecommender")}


def test_anomaly_scorer_ranks_anomalies_above_normal() -> None:
    """River's check_roc_auc, without scikit-learn: scored before learned, prequentially."""
    scorer, rocauc = AnomalyScorer(seed=42), metrics.ROCAUC()
    for x, y in fraud_stream(2000, seed=4):
        rocauc.update(y, scorer.score_one(x))
        scorer.learn_one(x)
    assert rocauc.get() >= 0.8


def test_classifier_ranks_fraud_above_legitimate() -> None:
    model = FraudClassifier()
    for i, (x, y) in enumerate(fraud_stream(2000)):
        model.learn_one(x, y, event_id=f"e{i}")
    scores = [(model.predict_proba_one(x)[True], y) for x, y in fraud_stream(500, seed=3)]
    fraud = [s for s, y in scores if y]
    legit = [s for s, y in scores if not y]
    assert min(fraud) > sorted(legit)[len(legit) // 2]


# -- the recommender through its own contract (River's dataset checks do not reach rankers) --------
def interactions(n: int = 400, seed: int = 0) -> list[tuple[str, str, bool, dict]]:
    rng = random.Random(seed)
    taste = {u: rng.choice("ab") for u in range(12)}
    out = []
    for _ in range(n):
        user = rng.randrange(12)
        item = f"{rng.choice('ab') if rng.random() < 0.3 else taste[user]}{rng.randrange(6)}"
        out.append((f"u{user}", item, item[0] == taste[user], {"hour": float(rng.randrange(24))}))
    return out


def teach(rec: OnlineRecommender, rows) -> None:
    for user, item, y, x in rows:
        rec.learn_one(user, item, y, x)


def test_recommender_does_not_mutate_its_inputs() -> None:
    """check_learn_one / check_predict_one_pure for a ranker: ``x`` is passed to every method."""
    rec = OnlineRecommender(seed=42)
    for user, item, y, x in interactions(200):
        items = {item, "a1", "b2"}
        before_x, before_items = copy.deepcopy(x), set(items)
        rec.learn_one(user, item, y, x, seen=frozenset(items))
        rec.predict_one(user, item, x)
        rec.rank(user, items, x)
        assert x == before_x and items == before_items


def test_recommender_survives_a_pickle_round_trip() -> None:
    rec = OnlineRecommender(seed=42)
    teach(rec, interactions())
    restored = pickle.loads(pickle.dumps(rec))
    items = sorted({item for _, item, _, _ in interactions()})
    for user in ("u0", "u5", "nobody"):
        assert restored.rank(user, items) == rec.rank(user, items)
        assert restored.predict_one(user, "a1") == rec.predict_one(user, "a1")


def test_recommender_is_reproducible_with_a_seed_and_its_clone_is_fresh_and_independent() -> None:
    a, b = OnlineRecommender(seed=7), OnlineRecommender(seed=7)
    teach(a, interactions())
    clone = a.clone()
    frozen = pickle.dumps(clone)
    teach(b, interactions())
    items = sorted({item for _, item, _, _ in interactions()})
    assert [a.predict_one("u3", i) for i in items] == [b.predict_one("u3", i) for i in items]
    assert clone._get_params() == a._get_params() and clone.n_learned == 0 and not clone.knows("u3")
    teach(a, itertools.islice(interactions(seed=1), 50))
    assert pickle.dumps(clone) == frozen  # learning on the original did not reach the clone


def test_recommender_learns_tastes() -> None:
    rec = OnlineRecommender(seed=42)
    teach(rec, interactions(3000))
    items = sorted({item for _, item, _, _ in interactions()})
    taste = {user: item[0] for user, item, y, _ in interactions() if y}
    hits = sum(rec.rank(user, items)[0][0] == liked for user, liked in taste.items())
    assert hits >= 0.8 * len(taste)
