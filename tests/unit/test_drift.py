"""Drift detection on River's synthetic streams with known drift points (fixed seeds)."""

from __future__ import annotations

import itertools

import pytest
from river.datasets import synth

from online_models.drift import DriftMonitor
from online_models.fraud_model import FraudClassifier


def signals_on(stream, n: int) -> list[tuple[int, str]]:
    """Prequential: score, let the monitor see the label and the score, then learn."""
    model, monitor, out = FraudClassifier(), DriftMonitor("classifier", features=()), []
    for i, (x, y) in enumerate(itertools.islice(stream, n)):
        p = model.predict_proba_one(x)[True]
        out += [(i, s.target) for s in monitor.observe_label(bool(y), p, float(i), "1")]
        model.learn_one(x, bool(y), event_id=str(i))
    return out


@pytest.mark.slow
def test_a_concept_drift_is_signalled_within_500_events() -> None:
    stream = synth.ConceptDriftStream(stream=synth.Agrawal(classification_function=1, seed=42),
                                      drift_stream=synth.Agrawal(classification_function=4, seed=42),
                                      position=5000, width=50, seed=1)
    signals = signals_on(stream, 10_000)
    print(signals)
    assert signals and 5000 <= signals[0][0] < 5500


@pytest.mark.slow
def test_a_stationary_stream_of_20000_events_raises_no_signal() -> None:
    assert signals_on(synth.Agrawal(classification_function=1, seed=42), 20_000) == []
    assert signals_on(synth.SEA(seed=42), 20_000) == []
