"""Backtests over the simulator's decision-time snapshots: the live rule set reproduces the
decisions that were made, and a candidate changes exactly the decisions its rules touch."""

from __future__ import annotations

import functools

from agents.sim.traffic import SIMULATED_LABEL_HORIZON_S, TrafficSimulator
from online_models.backtest import BacktestRow, backtest, format_report
from online_models.engine import FraudEngine
from online_models.replay import FraudReplay
from online_models.rules import RuleSet, default_rule_set
from schemas.records import Transaction
from schemas.settings import Settings

START = 1_700_000_000.0


@functools.cache
def simulated(n: int) -> tuple[list[BacktestRow], dict[str, str]]:
    """Rows as the learn topic would carry them (snapshot + label), and the decisions made."""
    settings = Settings(seed=7, label_horizon_s=SIMULATED_LABEL_HORIZON_S)
    replay = FraudReplay(FraudEngine.from_settings(settings), settings.label_horizon_s)
    rows, made = [], {}
    for ev in TrafficSimulator(seed=7, start_ts=START).events():
        if ev.kind != "transaction":
            continue
        d = replay.transaction(Transaction.from_dict(ev.payload))
        s = replay.snapshots[d.event_id]
        rows.append(BacktestRow(d.event_id, s.features, s.ts, s.score, bool(ev.is_fraud), s.blend, s.calibration))
        made[d.event_id] = d.decision
        if len(rows) == n:
            return rows, made
    raise AssertionError("unreachable: the simulator is endless")


def test_backtesting_the_live_rules_reproduces_the_decisions_made() -> None:
    rows, made = simulated(1500)
    live = default_rule_set()
    report = backtest(rows, live, live, review=0.5, decline=0.85)
    counts = {d: sum(1 for v in made.values() if v == d) for d in ("approve", "review", "decline")}
    assert {a: report["changes"][a][a] for a in counts} == counts  # all on the diagonal, as made
    assert report["live"] == report["candidate"] and report["frauds"] > 0
    assert sum(r["hits"] for r in report["rules"].values()) > 0


def test_a_candidate_changes_exactly_the_decisions_its_rules_touch() -> None:
    rows, made = simulated(1500)
    live = default_rule_set()
    doc = live.to_doc()
    doc["version"] = "cand"
    doc["rules"].append({"name": "tiny", "when": "amount < 3", "action": "decline"})
    doc["rules"].append({"name": "watch", "when": "amount > 400", "action": "review", "mode": "shadow"})
    candidate = RuleSet.from_doc(doc)
    report = backtest(rows, live, candidate, review=0.5, decline=0.85)
    tiny = [r for r in rows if r.features["amount"] < 3]
    frauds = sum(r.is_fraud for r in rows)
    assert report["rules"]["tiny"]["hits"] == len(tiny) > 0
    assert report["rules"]["tiny"]["recall"] == round(sum(r.is_fraud for r in tiny) / frauds, 4)
    assert report["rules"]["watch"]["hits"] == sum(r.features["amount"] > 400 for r in rows)
    moved = {a: report["changes"][a]["decline"] for a in ("approve", "review")}
    assert sum(moved.values()) == sum(1 for r in tiny if made[r.event_id] != "decline")
    off_diagonal = sum(v for a, row in report["changes"].items() for b, v in row.items() if a != b)
    assert off_diagonal == sum(moved.values())  # the shadow rule changed nothing
    assert report["candidate"]["reviews"] <= report["live"]["reviews"]
    text = format_report(report)
    assert "rule set cand against default-1" in text and "tiny" in text
