"""Champion / challenger on a stream whose concept changes half way."""

from __future__ import annotations

import itertools
import pickle

import pytest
from river import forest
from river.datasets import synth

from online_models.champion import ChampionChallenger
from online_models.drift import DriftMonitor
from online_models.fraud_model import FraudClassifier


@pytest.mark.slow
def test_a_drift_starts_a_challenger_that_is_promoted_on_merit_and_serves() -> None:
    stream = synth.ConceptDriftStream(stream=synth.Agrawal(classification_function=1, seed=42),
                                      drift_stream=synth.Agrawal(classification_function=4, seed=42),
                                      position=3000, width=50, seed=1)
    cc = ChampionChallenger(FraudClassifier(), lambda: forest.ARFClassifier(n_models=5, seed=42),
                            challenger_name="arf", window=300, monitor=DriftMonitor("classifier", features=(),
                                                                                     grace=500))
    for i, (x, y) in enumerate(itertools.islice(stream, 6000)):
        cc.predict_proba_one(x)
        cc.learn_one(x, bool(y), i, float(i))
    kinds = [e["event"] for e in cc.events]
    print(cc.events)
    assert kinds[:2] == ["challenger_started", "promoted"]
    started, promoted = cc.events[0], cc.events[1]
    assert 3000 <= started["at"] < 3500 and promoted["at"] > started["at"]
    assert promoted["accuracy"] >= promoted["champion_accuracy"] + 0.01
    assert cc.generation == 2 and cc.serving.name == "arf-2"


@pytest.mark.slow
def test_no_drift_no_challenger() -> None:
    cc = ChampionChallenger(FraudClassifier(), lambda: FraudClassifier(), window=300)
    for i, (x, y) in enumerate(itertools.islice(synth.Agrawal(classification_function=1, seed=42), 6000)):
        cc.learn_one(x, bool(y), i, float(i))
    assert cc.events == [] and cc.generation == 1


def test_a_checkpoint_pickled_before_the_contenders_left_the_parameters_still_loads() -> None:
    """Checkpoints in Redis outlive a deploy: the previous layout kept the contenders under
    ``champion`` / ``challenger`` and had no ``champion_name``."""
    cc = ChampionChallenger(FraudClassifier(), window=300)
    for i, (x, y) in enumerate(itertools.islice(synth.Agrawal(classification_function=1, seed=42), 500)):
        cc.learn_one(x, bool(y), i, float(i))
    old = {k: v for k, v in cc.__dict__.items() if k not in ("serving", "shadow", "champion_name", "_own_monitor")}
    old.update(champion=cc.serving, challenger=None, monitor=DriftMonitor("classifier", features=()))
    restored = pickle.loads(pickle.dumps(old))
    loaded = ChampionChallenger.__new__(ChampionChallenger)
    loaded.__setstate__(restored)
    x = next(iter(synth.Agrawal(classification_function=1, seed=7)))[0]
    assert loaded.predict_proba_one(x) == cc.predict_proba_one(x)
    assert loaded.serving.name == "classifier" and loaded.shadow is None and loaded.champion is loaded.serving.model
    loaded.learn_one(x, True, "next", 501.0)  # and it goes on learning
