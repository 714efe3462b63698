"""Signals an operator can trust, on the simulator (seed 42): drift signals quiet while nothing
changes and one signal when the injected change comes (day 2: shoppers spend 1.6x, card testers
move to larger amounts); decision scores that are calibrated probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agents.sim.traffic import DAY, SIMULATED_LABEL_HORIZON_S, TrafficSimulator
from online_models.engine import FraudEngine
from online_models.evaluation import expected_calibration_error, reliability
from online_models.replay import FraudReplay
from schemas.records import DriftSignal, FraudLabel, Transaction
from schemas.settings import Settings

START = 1_700_000_000.0
DRIFT_AT = 2 * DAY
AFTER_DRIFT = 2000  # transactions
AMOUNT_FEATURES = {"amount", "log_amount", "user_amount_z", "user_amount_ratio", "user_sum_24h", "merchant_sum_24h"}


@dataclass
class Run:
    signals: list[DriftSignal] = field(default_factory=list)
    drift_ts: float = 0.0  # event time of the first drifted transaction
    deadline_ts: float = 0.0  # event time of the AFTER_DRIFT-th transaction after it
    truth: list[bool] = field(default_factory=list)  # transactions after the warm-up day:
    scores: list[float] = field(default_factory=list)  # the decision score (calibrated)
    blends: list[float] = field(default_factory=list)  # the score before calibration


@pytest.fixture(scope="module")
def run() -> Run:
    settings = Settings(seed=42, label_horizon_s=SIMULATED_LABEL_HORIZON_S)
    replay = FraudReplay(FraudEngine.from_settings(settings), settings.label_horizon_s)
    out, drifted = Run(), 0
    for ev in TrafficSimulator(seed=42, start_ts=START, drift_at=DRIFT_AT).events():
        if ev.kind == "label":
            replay.label(FraudLabel(**ev.payload))
            continue
        decision = replay.transaction(Transaction(**ev.payload))
        if ev.ts >= START + DAY:
            out.truth.append(bool(ev.is_fraud))
            out.scores.append(decision.score)
            out.blends.append(replay.snapshots[decision.event_id].blend)
        if ev.ts >= START + DRIFT_AT:
            drifted += 1
            out.drift_ts = out.drift_ts or ev.ts
            if drifted == AFTER_DRIFT:
                out.deadline_ts = ev.ts
                break
    out.signals = replay.drift_signals
    return out


@pytest.mark.slow
def test_at_most_one_signal_a_day_before_the_change_and_none_in_the_warm_up(run: Run) -> None:
    before = [s for s in run.signals if s.detected_at < run.drift_ts]
    days = [int((s.detected_at - START) // DAY) for s in before]
    assert 0 not in days  # the first day is the warm-up
    assert all(days.count(d) <= 1 for d in days), [(s.name, s.detected_at) for s in before]


@pytest.mark.slow
def test_the_injected_change_is_signalled_within_2000_transactions_naming_the_amounts(run: Run) -> None:
    after = [s for s in run.signals if run.drift_ts <= s.detected_at <= run.deadline_ts and s.target == "feature"]
    assert after, [(s.name, s.detected_at - START) for s in run.signals]
    first = after[0]
    print(first)
    moved = [m["name"] for m in first.moved]
    assert first.name in AMOUNT_FEATURES and len(AMOUNT_FEATURES & set(moved)) >= 2
    assert first.current != first.reference and first.statistic >= first.threshold


@pytest.mark.slow
def test_decision_scores_after_the_warm_up_are_calibrated(run: Run) -> None:
    ece = expected_calibration_error(run.truth, run.scores)
    rates = {name: [sum(s >= t for s in scores) / len(scores) for t in (0.5, 0.85)]
             for name, scores in (("calibrated", run.scores), ("blend", run.blends))}
    blend_ece = expected_calibration_error(run.truth, run.blends)
    print(f"ECE {ece:.4f} (blend {blend_ece:.4f}) over {len(run.truth):,} transactions, {sum(run.truth)} fraud; "
          f"review/decline rates {rates}; curve {reliability(run.truth, run.scores)}")
    assert ece <= 0.05
    # The thresholds still mean something: some traffic reviewed, a little declined, most approved.
    review, decline = rates["calibrated"]
    fraud_share = sum(run.truth) / len(run.truth)
    assert fraud_share / 4 <= review <= 4 * fraud_share and 0 < decline <= review
