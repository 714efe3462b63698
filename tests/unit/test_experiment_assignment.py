"""Experiment arms (online_models.experiments) and the verdict on them (online_models.experiment_stats)."""

from __future__ import annotations

import json
import math
import random

import pytest

from online_models.experiment_stats import arm_rows, rocauc, verdict, wilson
from online_models.experiments import BUCKETS, CONTROL, TREATMENT, Experiment, Guardrails, bucket, check_treatment

USERS = [f"user-{i}" for i in range(40_000)]


def within(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_a_users_arm_is_sticky_and_depends_only_on_experiment_and_user() -> None:
    exp = Experiment("exp-fraud-a1b2c3", "fraud", "7", share=25.0)
    first = [exp.arm(u) for u in USERS[:2000]]
    # Another worker, later: a fresh object from the stored form gives the same arms.
    again = Experiment.from_dict(exp.to_dict())
    assert [again.arm(u) for u in USERS[:2000]] == first
    assert all(0 <= bucket(exp.experiment_id, u) < BUCKETS for u in USERS[:2000])


@pytest.mark.parametrize("share", [5.0, 25.0, 50.0])
def test_shares_hold_within_sampling_error(share: float) -> None:
    exp = Experiment(f"exp-share-{share:g}", "fraud", "7", share=share)
    treated = sum(exp.arm(u) == TREATMENT for u in USERS)
    assert within(treated, len(USERS), share / 100), (treated, share)


def test_full_and_stopped_experiments() -> None:
    assert {Experiment("e", "fraud", "7", 100.0).arm(u) for u in USERS[:500]} == {TREATMENT}
    assert {Experiment("e", "fraud", "7", 50.0, status="rolled_back").arm(u) for u in USERS[:500]} == {CONTROL}


def test_ramping_keeps_every_treated_user_treated() -> None:
    exp = Experiment("exp-ramp", "fraud", "7", share=5.0)
    at5 = {u for u in USERS if exp.arm(u) == TREATMENT}
    at25 = {u for u in USERS if exp.ramped(25.0, 0).arm(u) == TREATMENT}
    assert at5 and at5 < at25


def test_experiments_assign_independently() -> None:
    a, b = Experiment("exp-a", "fraud", "7", 50.0), Experiment("exp-b", "fraud", "7", 50.0)
    both = sum(a.arm(u) == TREATMENT and b.arm(u) == TREATMENT for u in USERS)
    assert within(both, len(USERS), 0.25), both
    # And bucket by bucket: the correlation of the two experiments' buckets is near zero.
    xs = [bucket("exp-a", u) for u in USERS]
    ys = [bucket("exp-b", u) for u in USERS]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    corr = cov / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))
    assert abs(corr) < 4 / math.sqrt(len(USERS)), corr


def test_treatments_are_checked() -> None:
    assert check_treatment("fraud", "v12") == "12"
    assert check_treatment("reco", "popular") == "popular"
    for model, bad in (("fraud", "latest"), ("fraud", "0"), ("reco", "explore:2"), ("reco", "popular:0.1"),
                       ("ads", "7")):
        with pytest.raises(ValueError):
            check_treatment(model, bad)


def test_wilson_covers_the_truth_about_95_percent_of_the_time() -> None:
    rng = random.Random(3)
    covered = 0
    for _ in range(2000):
        k = sum(rng.random() < 0.1 for _ in range(200))
        lo, hi = wilson(k, 200)
        covered += lo <= 0.1 <= hi
    assert 0.92 <= covered / 2000 <= 0.98


def test_rocauc_matches_a_pairwise_count_and_its_interval_narrows_with_data() -> None:
    rng = random.Random(5)
    pairs = [(rng.random() + (0.3 if y else 0.0), y) for y in (rng.random() < 0.2 for _ in range(600))]
    pos = [s for s, y in pairs if y]
    neg = [s for s, y in pairs if not y]
    pairwise = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    auc, (lo, hi) = rocauc(pairs)
    assert auc == pytest.approx(pairwise)
    _, (lo_small, hi_small) = rocauc(pairs[:100])
    assert lo < auc < hi and hi - lo < hi_small - lo_small
    assert rocauc([(0.5, False)] * 3) is None


def fraud_counts(n: int, flagged: float, labels: int = 0, cost: float = 0.0) -> dict:
    return {"n": n, "review": round(n * flagged), "decline": 0, "labels": labels, "cost": cost * labels,
            "cost2": cost * cost * labels}


def test_verdict_rolls_back_a_treatment_that_flags_beyond_the_bound() -> None:
    exp = Experiment("e", "fraud", "7", 5.0, guardrails=Guardrails(max_flag_increase=0.05, min_decisions=200))
    worse = verdict(exp, {CONTROL: fraud_counts(4000, 0.05), TREATMENT: fraud_counts(300, 0.30)}, {})
    assert worse.action == "rollback" and "review+decline" in worse.reason
    # Within the bound, or too few decisions to judge: hold.
    assert verdict(exp, {CONTROL: fraud_counts(4000, 0.05), TREATMENT: fraud_counts(300, 0.08)}, {}).action == "hold"
    assert verdict(exp, {CONTROL: fraud_counts(4000, 0.05), TREATMENT: fraud_counts(150, 0.9)}, {}).action == "hold"


def test_verdict_rolls_back_on_cost_once_labels_suffice_and_ramps_a_good_treatment() -> None:
    g = Guardrails(max_cost_increase=5.0, min_labels=50, ramp_after=100)
    exp = Experiment("e", "fraud", "7", 5.0, guardrails=g)
    costly = verdict(exp, {CONTROL: fraud_counts(4000, 0.05, 400, 2.0), TREATMENT: fraud_counts(300, 0.05, 120, 30.0)},
                     {})
    assert costly.action == "rollback" and "cost" in costly.reason
    good = verdict(exp, {CONTROL: fraud_counts(4000, 0.05, 400, 2.0), TREATMENT: fraud_counts(300, 0.05, 120, 2.0)}, {})
    assert (good.action, good.share) == ("ramp", 25.0)
    # Never ramped before the decision guardrail can be judged, however many labels.
    assert verdict(exp, {CONTROL: fraud_counts(4000, 0.05, 400, 2.0), TREATMENT: fraud_counts(150, 0.9, 120, 2.0)},
                   {}).action == "hold"
    # The ramp counts labels from the current stage's start.
    assert verdict(exp.ramped(25.0, 60), {CONTROL: fraud_counts(4000, 0.05, 400, 2.0),
                                          TREATMENT: fraud_counts(300, 0.05, 120, 2.0)}, {}).action == "hold"


def test_reco_verdict_judges_the_hit_rate() -> None:
    exp = Experiment("e", "reco", "popular", 25.0, guardrails=Guardrails(max_flag_increase=0.05, min_decisions=200))
    worse = verdict(exp, {CONTROL: {"outcomes": 2000, "hit": 600}, TREATMENT: {"outcomes": 600, "hit": 60}}, {})
    assert worse.action == "rollback" and "hit rate" in worse.reason
    rows = arm_rows("reco", {CONTROL: {"outcomes": 2000, "hit": 600, "conv": 100}}, {})
    assert rows[0].figures["hit_rate"][0] == pytest.approx(0.3) and rows[1].figures["hit_rate"] is None


def test_the_dev_dashboard_shows_the_running_experiment_and_its_arms() -> None:
    from agents.dev.dashboard import Figures
    from agents.sim.simulator import Truth

    figures, truth = Figures(), Truth()
    figures.add_experiment_event({"event": "experiment_started", "role": "fraud", "experiment": "exp-fraud-1",
                                  "treatment": "3", "share": 25.0, "reason": "", "by": "op", "at": 0.0})
    truth.is_fraud.update({"e1": True, "e2": False})
    for event_id, decision, arm in (("e1", "decline", "treatment"), ("e2", "approve", "treatment"),
                                    ("e3", "approve", "control")):
        figures.add_decision({"event_id": event_id, "decision": decision, "score": 0.5, "experiment": "exp-fraud-1",
                              "arm": arm}, truth, 0.0)
    lines = figures.experiment_lines()
    assert lines[0] == "  experiment    exp-fraud-1 (fraud) treatment 3 at 25 %  [started]"
    assert lines[1] == "    control     decisions 1  review+decline 0.000  fraud caught 0/0"
    assert lines[2] == "    treatment   decisions 2  review+decline 0.500  fraud caught 1/1"
    figures.add_experiment_event({"event": "experiment_rolled_back", "role": "fraud", "experiment": "exp-fraud-1",
                                  "treatment": "3", "share": 0.0, "reason": "guardrail", "by": "w", "at": 1.0})
    assert figures.experiment_lines()[0].endswith("at 0 %  [rolled_back: guardrail]")


def test_every_recommendation_logs_the_probability_of_its_list() -> None:
    import jsonschema

    from online_models.reco_engine import RecoEngine
    from schemas.contracts import load_schema
    from schemas.records import RecoRequest

    engine = RecoEngine(explore_share=0.3)
    trending = [(f"i{n}", 100.0 - n) for n in range(40)]
    seen = {"i0"}
    recs = [engine.recommend(RecoRequest(f"r{n}", "u1", 3, 0.0), seen, trending, generated_at=0.0) for n in range(300)]
    tail = 40 - 3  # the trending items after the first k (the one seen is among the first)
    for rec in recs:
        expected = 0.3 / (tail * (tail - 1) * (tail - 2)) if rec.strategy == "explore" else 0.7
        assert rec.propensity == pytest.approx(expected)
        jsonschema.validate(json.loads(rec.to_json()), load_schema("recommendation.schema.json"))
    explored = sum(rec.strategy == "explore" for rec in recs)
    assert within(explored, len(recs), 0.3)
