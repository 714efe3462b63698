"""The same contract checks over every model we ship (after river/checks/common.py)."""

from __future__ import annotations

import copy
import pickle
import random

import pytest

from online_models.anomaly import AnomalyScorer
from online_models.fraud_model import FraudClassifier


def stream(n: int = 300, seed: int = 0):
    rng = random.Random(seed)
    for i in range(n):
        fraud = rng.random() < 0.1
        x = {"log_amount": rng.gauss(6 if fraud else 3, 0.5), "user_count_1m": float(fraud * rng.randint(2, 9)),
             "new_country": float(fraud and rng.random() < 0.5), "secs_since_last": rng.uniform(10, 1e5)}
        yield f"e{i}", x, fraud


def teach(model, n: int = 300) -> None:
    for event_id, x, y in stream(n):
        if isinstance(model, FraudClassifier):
            model.learn_one(x, y, event_id=event_id)
        else:
            model.learn_one(x)


def predict(model, x) -> float:
    return model.predict_proba_one(x)[True] if isinstance(model, FraudClassifier) else model.score_one(x)


MODELS = [lambda: FraudClassifier(), lambda: AnomalyScorer(seed=42)]


@pytest.mark.parametrize("make", MODELS, ids=["FraudClassifier", "AnomalyScorer"])
def test_does_not_mutate_its_input(make) -> None:
    model = make()
    for event_id, x, y in stream(50):
        before = dict(x)
        teach(model, 1)
        predict(model, x)
        assert x == before


@pytest.mark.parametrize("make", MODELS, ids=["FraudClassifier", "AnomalyScorer"])
def test_survives_a_pickle_round_trip(make) -> None:
    model = make()
    teach(model)
    restored = pickle.loads(pickle.dumps(model))
    for _, x, _ in stream(20, seed=1):
        assert predict(restored, x) == predict(model, x)


@pytest.mark.parametrize("make", MODELS, ids=["FraudClassifier", "AnomalyScorer"])
def test_clone_is_fresh_and_keeps_parameters(make) -> None:
    model = make()
    teach(model)
    fresh = model.clone()
    assert fresh._get_params() == model._get_params()
    assert copy.deepcopy(make())._get_params() == fresh._get_params()


@pytest.mark.parametrize("make", MODELS, ids=["FraudClassifier", "AnomalyScorer"])
def test_is_reproducible(make) -> None:
    a, b = make(), make()
    teach(a)
    teach(b)
    assert [predict(a, x) for _, x, _ in stream(30, 2)] == [predict(b, x) for _, x, _ in stream(30, 2)]


def test_classifier_ranks_fraud_above_legitimate() -> None:
    model = FraudClassifier()
    teach(model, 2000)
    scores = [(predict(model, x), y) for _, x, y in stream(500, seed=3)]
    fraud = [s for s, y in scores if y]
    legit = [s for s, y in scores if not y]
    assert min(fraud) > sorted(legit)[len(legit) // 2]
