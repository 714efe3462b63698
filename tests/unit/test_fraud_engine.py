"""The fraud engine on the simulator's stream, through the same code the workers run."""

from __future__ import annotations

import itertools
import json
import pickle

import pytest
from river import metrics

from agents.sim.traffic import SIMULATED_LABEL_HORIZON_S, TrafficSimulator
from online_models.decisions import decide
from online_models.engine import FraudEngine
from online_models.replay import FraudReplay
from schemas.records import Transaction
from schemas.settings import Settings
from schemas.validation import LABELS, TRANSACTIONS, UNKEYED, InputRules, decode

START = 1_700_000_000.0


def replay_simulation(n_transactions: int, seed: int = 42) -> tuple[FraudReplay, metrics.ROCAUC, dict]:
    """Prequential ROCAUC of the first ``n_transactions``: each score is given before its label is learned."""
    settings = Settings(seed=seed, label_horizon_s=SIMULATED_LABEL_HORIZON_S)
    replay = FraudReplay(FraudEngine.from_settings(settings), settings.label_horizon_s)
    # 1,000 thresholds, not River's default 10: calibrated scores at a 1.5 % fraud rate sit mostly under
    # 0.1, where 10 thresholds see one bucket (online_models.evaluation.exact_rocauc).
    rocauc, outcomes = metrics.ROCAUC(n_thresholds=1000), {"approve": 0, "review": 0, "decline": 0}
    seen = 0
    rules = InputRules.from_settings(settings)
    for ev in TrafficSimulator(seed=seed, start_ts=START).events():
        raw = json.dumps(ev.payload).encode()
        if ev.kind == "label":
            replay.label(decode(LABELS, raw, rules=rules, now=ev.ts, key=UNKEYED).record)
            continue
        tx = decode(TRANSACTIONS, raw, rules=rules, now=ev.ts, key=UNKEYED).record
        decision = replay.transaction(tx)
        rocauc.update(bool(ev.is_fraud), decision.score)
        outcomes[decision.decision] += 1
        seen += 1
        if seen == n_transactions:
            return replay, rocauc, outcomes
    raise AssertionError("unreachable: the simulator is endless")


@pytest.mark.slow
def test_prequential_rocauc_after_5000_simulated_events_is_at_least_095() -> None:
    replay, rocauc, outcomes = replay_simulation(5000)
    print(f"ROCAUC after 5,000 events: {rocauc.get():.4f}; outcomes {outcomes}; "
          f"labels learned {replay.labels_learned}, expired as legitimate {replay.expired_learned}")
    assert rocauc.get() >= 0.95
    assert replay.labels_learned > 0 and replay.expired_learned > 0  # both label paths were exercised
    assert outcomes["approve"] > 0.9 * 5000  # thresholds leave honest shoppers alone


def tx(event_id: str, ts: float, **overrides) -> Transaction:
    fields = dict(event_id=event_id, ts=ts, user_id="alice", merchant_id="m1", amount=25.0, currency="EUR",
                  country="FR", channel="app", device_id="d1")
    return Transaction(**{**fields, **overrides})


def test_learning_uses_the_snapshot_taken_at_decision_time() -> None:
    engine = FraudEngine.from_settings(Settings())
    first = engine.score(tx("e1", START), None, {}, decided_at=START)
    later = engine.score(tx("e2", START + 10), first.user_state, {}, decided_at=START + 10)
    assert first.snapshot.features["user_count_1h"] == 0 and later.snapshot.features["user_count_1h"] == 1
    before = engine.classifier.n_learned
    engine.learn_label(first.snapshot, True, event_id="e1")
    assert engine.classifier.n_learned == before + 1
    assert first.snapshot.features["user_count_1h"] == 0  # learning never rewrites the snapshot


def test_a_label_delivered_twice_is_learned_once_also_by_a_model_restored_from_its_checkpoint() -> None:
    """Labels reach the learner at least once; the model (and what a checkpoint holds) learns each once.
    An example assumed legitimate at the horizon and a later chargeback are two examples."""
    engine = FraudEngine.from_settings(Settings())
    scored = engine.score(tx("e1", START), None, {}, decided_at=START)
    assert engine.learn_label(scored.snapshot, True, event_id="e1").increments
    assert engine.learn_label(scored.snapshot, True, event_id="e1").increments == {}  # the copy changes nothing
    assert engine.classifier.n_learned == 1
    restored = FraudEngine.from_settings(Settings())
    restored.load(pickle.loads(pickle.dumps(engine.models())))
    restored.learn_label(scored.snapshot, True, event_id="e1")
    assert restored.classifier.n_learned == 1
    engine.learn_label(scored.snapshot, False, event_id="e1", observed=False)
    assert engine.classifier.n_learned == 2


def test_decisions_carry_flags_reasons_and_model_version() -> None:
    engine = FraudEngine.from_settings(Settings())
    scored = engine.score(tx("e1", START), None, {}, decided_at=START, degraded=True)
    d = scored.decision
    assert d.degraded and d.model == "lr+hst+rules" and d.model_version == "1.0.0"
    assert "degraded_state" in [r.name for r in d.reasons]
    assert d.decision == decide(d.score, review=0.5, decline=0.85)  # the default thresholds


def test_card_testing_burst_is_declined_or_reviewed_by_rules_before_any_label() -> None:
    engine = FraudEngine.from_settings(Settings())
    state, decisions = None, []
    for i in range(6):
        scored = engine.score(tx(f"c{i}", START + 5 * i, amount=1.0, merchant_id=f"m{i}", device_id="stolen"),
                              state, {}, decided_at=START + 5 * i)
        state = scored.user_state
        decisions.append(scored.decision)
    assert decisions[0].decision == "approve"
    assert decisions[-1].decision in ("review", "decline")
    assert "card_testing" in [r.name for r in decisions[-1].reasons]


def test_replay_is_deterministic_with_a_seed() -> None:
    a = replay_simulation(500)[0]
    b = replay_simulation(500)[0]
    assert [d.score for d in a.decisions.values()] == [d.score for d in b.decisions.values()]


def test_a_repeated_event_id_gets_its_first_decision_and_is_learned_once() -> None:
    replay = FraudReplay(FraudEngine.from_settings(Settings()), label_horizon_s=3600.0)
    first = replay.transaction(tx("e1", START))
    again = replay.transaction(tx("e1", START, amount=9999.0))
    assert again == first
    assert len(list(itertools.islice(replay.snapshots, 5))) == 1
