"""What a candidate rule set would have done to past decisions, beside the live one.

Each row is a decided event's decision-time snapshot (features, score, event time) with its label:
a chargeback or confirmation, or legitimate as assumed at the label horizon. Both rule sets see the
same features; the score before rules is recovered from the stored score by taking the live set's
bumps off again, so each set's decision is ``its forcing rules (its bumps on the base score)`` by
the same thresholds. A condition over a field snapshots do not keep (``user_id``, ``country``,
``channel``, ...) cannot be evaluated on a snapshot, and does not fire in a backtest.

>>> from online_models.rules import RuleSet, default_rule_set
>>> cand = RuleSet.from_doc({"version": "c", "rules": [{"name": "big", "when": "amount >= 100", "action": "decline"}]})
>>> rows = [BacktestRow("a", {"amount": 150.0}, 0.0, 0.1, True), BacktestRow("b", {"amount": 120.0}, 0.0, 0.1, False),
...         BacktestRow("c", {"amount": 10.0}, 0.0, 0.1, True)]
>>> report = backtest(rows, RuleSet("live", ()), cand, review=0.5, decline=0.85)
>>> report["rules"]["big"]["hits"], report["rules"]["big"]["precision"], report["rules"]["big"]["recall"]
(2, 0.5, 0.5)
>>> report["changes"]["approve"]["decline"], report["candidate"]["total_cost"]
(2, 20.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from online_models.calibration import calibrated
from online_models.decisions import decide
from online_models.evaluation import total_cost
from online_models.rules import RuleSet

DECISIONS = ("approve", "review", "decline")


@dataclass(frozen=True)
class BacktestRow:
    event_id: str
    features: Mapping[str, float]
    ts: float
    score: float  # as decided (the live rules' bumps included)
    is_fraud: bool
    blend: float | None = None  # the score before calibration (snapshots of earlier releases: None)
    calibration: tuple[float, float] | None = None  # the calibration it was decided with (None: identity)


def base_score(score: float, live: RuleSet, features: Mapping[str, float]) -> float:
    """``score`` with the live set's bumps on these features taken off (the model's own score)."""
    keep = 1.0
    for rule in live.evaluate(features).hits:
        if rule.action == "add_score":
            keep *= 1.0 - rule.bump
    return score if keep <= 0.0 else max(0.0, 1.0 - (1.0 - score) / keep)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _outcome(rules: RuleSet, x: Mapping[str, float], base: float, review: float, decline: float,
             calibration: tuple[float, float] | None = None):
    found = rules.evaluate(x)
    return found, found.decide(decide(calibrated(found.apply(base), calibration), review, decline))


def backtest(rows: Iterable[BacktestRow], live: RuleSet, candidate: RuleSet, *, review: float, decline: float,
             review_cost: float = 5.0) -> dict:
    """Per candidate rule and in total: hits, precision and recall against the labels; the decisions
    that would change (live -> candidate); review volume and cost (as ``streamsense evaluate``
    counts it: fraud approved, by amount, plus ``review_cost`` per event reviewed or declined)."""
    per_rule = {r.name: {"mode": r.mode, "hits": 0, "fraud_hits": 0} for r in candidate.rules}
    changes = {a: dict.fromkeys(DECISIONS, 0) for a in DECISIONS}
    totals = {"events": 0, "frauds": 0, "any_hits": 0, "any_fraud_hits": 0}
    sides = {side: {"reviews": 0, "flagged": 0, "missed_fraud_amount": 0.0} for side in ("live", "candidate")}
    for row in rows:
        # Bumps are taken off the blend (before calibration), and each side's score is calibrated as it was.
        base = base_score(row.score if row.blend is None else row.blend, live, row.features)
        _, live_decision = _outcome(live, row.features, base, review, decline, row.calibration)
        found, cand_decision = _outcome(candidate, row.features, base, review, decline, row.calibration)
        totals["events"] += 1
        totals["frauds"] += row.is_fraud
        for rule in found.hits + found.shadow:
            per_rule[rule.name]["hits"] += 1
            per_rule[rule.name]["fraud_hits"] += row.is_fraud
        if found.hits or found.shadow:
            totals["any_hits"] += 1
            totals["any_fraud_hits"] += row.is_fraud
        changes[live_decision][cand_decision] += 1
        for side, decision in (("live", live_decision), ("candidate", cand_decision)):
            sides[side]["reviews"] += decision == "review"
            sides[side]["flagged"] += decision != "approve"
            if decision == "approve" and row.is_fraud:
                sides[side]["missed_fraud_amount"] += float(row.features.get("amount", 0.0))
    n, frauds = totals["events"], totals["frauds"]
    rules_out = {name: {"mode": r["mode"], "hits": r["hits"], "hit_rate": _ratio(r["hits"], n),
                        "precision": _ratio(r["fraud_hits"], r["hits"]), "recall": _ratio(r["fraud_hits"], frauds)}
                 for name, r in per_rule.items()}
    out = {"live_version": live.version, "candidate_version": candidate.version, "events": n, "frauds": frauds,
           "rules": rules_out,
           "total": {"hits": totals["any_hits"], "precision": _ratio(totals["any_fraud_hits"], totals["any_hits"]),
                     "recall": _ratio(totals["any_fraud_hits"], frauds)},
           "changes": changes}
    for side, s in sides.items():
        out[side] = {"reviews": s["reviews"], "missed_fraud_amount": round(s["missed_fraud_amount"], 2),
                     "total_cost": total_cost(s["missed_fraud_amount"], s["flagged"], review_cost)}
    return out


def format_report(report: Mapping) -> str:
    """The backtest as a person reads it."""
    lines = [f"rule set {report['candidate_version']} against {report['live_version']} (live), "
             f"{report['events']} decided events, {report['frauds']} fraud",
             f"{'rule':<24} {'mode':<7} {'hits':>7} {'rate':>8} {'precision':>10} {'recall':>8}"]
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for name, r in report["rules"].items():
        lines.append(f"{name:<24} {r['mode']:<7} {r['hits']:>7} {fmt(r['hit_rate']):>8} {fmt(r['precision']):>10} "
                     f"{fmt(r['recall']):>8}")
    t = report["total"]
    lines.append(f"{'(any rule)':<24} {'':<7} {t['hits']:>7} {'':>8} {fmt(t['precision']):>10} {fmt(t['recall']):>8}")
    lines.append("decisions, live (rows) -> candidate (columns):")
    lines.append(f"{'':<10}" + "".join(f"{d:>10}" for d in DECISIONS))
    for a in DECISIONS:
        lines.append(f"{a:<10}" + "".join(f"{report['changes'][a][b]:>10}" for b in DECISIONS))
    for side in ("live", "candidate"):
        s = report[side]
        lines.append(f"{side:<10} reviews {s['reviews']}, fraud approved {s['missed_fraud_amount']:.2f}, "
                     f"cost {s['total_cost']:.2f}")
    return "\n".join(lines)
