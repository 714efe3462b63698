"""Drift signals on the simulator (seed 42): quiet while nothing changes, one signal when the
injected change comes (day 2: shoppers spend 1.6x, card testers move to larger amounts)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agents.sim.traffic import DAY, SIMULATED_LABEL_HORIZON_S, TrafficSimulator
from online_models.engine import FraudEngine
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


@pytest.fixture(scope="module")
def run() -> Run:
    settings = Settings(seed=42, label_horizon_s=SIMULATED_LABEL_HORIZON_S)
    replay = FraudReplay(FraudEngine.from_settings(settings), settings.label_horizon_s)
    out, drifted = Run(), 0
    for ev in TrafficSimulator(seed=42, start_ts=START, drift_at=DRIFT_AT).events():
        if ev.kind == "label":
            replay.label(FraudLabel(**ev.payload))
            continue
        replay.transaction(Transaction(**ev.payload))
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
