"""What each arm of an experiment did, with confidence intervals, and the verdict on the treatment.

Inputs are the per-arm counters and labelled scores the workers keep (agents.experiment_arms):
fraud ``n`` decisions, ``approve`` / ``review`` / ``decline``, ``labels``, ``tp`` / ``fp`` / ``fn`` /
``tn`` at the review threshold, ``cost`` and ``cost2`` (sum and sum of squares of the cost per
labelled event); recommendations ``n`` answers, ``outcomes`` (answers whose outcome window closed),
``hit`` (a listed item interacted with) and ``conv`` (a listed item bought). Pure.

Intervals are 95 %: Wilson for proportions, normal for the mean cost, Hanley-McNeil for ROCAUC.
The verdict compares treatment with control "beyond sampling error": a difference counts when it
exceeds the stated bound by more than ``z`` standard errors of the difference.

>>> control = {"n": 1000, "review": 50, "decline": 10}
>>> worse = {"n": 1000, "review": 200, "decline": 40}
>>> verdict(Experiment("e", "fraud", "2", 5.0), {"control": control, "treatment": worse}, {}).action
'rollback'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from online_models.experiments import CONTROL, TREATMENT, Experiment, next_share

Z95 = 1.96
Interval = tuple[float, float]


def wilson(k: float, n: float, z: float = Z95) -> Interval:
    """Wilson score interval of a proportion ``k / n``.

    >>> [round(v, 3) for v in wilson(10, 100)]
    [0.055, 0.174]
    """
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rocauc(pairs: Sequence[tuple[float, bool]], z: float = Z95) -> tuple[float, Interval] | None:
    """ROCAUC of (score, is_fraud) pairs, ties counted half, with the Hanley-McNeil interval;
    None without both classes.

    >>> auc, (lo, hi) = rocauc([(0.9, True), (0.8, False), (0.7, True), (0.1, False)])
    >>> auc, lo < auc < hi
    (0.75, True)
    """
    pos = sorted(s for s, y in pairs if y)
    neg = sorted(s for s, y in pairs if not y)
    if not pos or not neg:
        return None
    # Rank-sum (Mann-Whitney U) with average ranks for ties.
    ranked = sorted([(s, True) for s in pos] + [(s, False) for s in neg])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average = (i + 1 + j) / 2
        rank_sum += average * sum(1 for _, y in ranked[i:j] if y)
        i = j
    n1, n0 = len(pos), len(neg)
    auc = (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc * auc) + (n0 - 1) * (q2 - auc * auc)) / (n1 * n0)
    half = z * math.sqrt(max(var, 0.0))
    return auc, (max(0.0, auc - half), min(1.0, auc + half))


def mean_interval(total: float, squares: float, n: float, z: float = Z95) -> tuple[float, Interval]:
    """Mean and normal interval from a sum and a sum of squares.

    >>> mean, (lo, hi) = mean_interval(30.0, 500.0, 3)  # costs 0, 10, 20: sd 10, se 5.77
    >>> mean, round(lo, 2), round(hi, 2)
    (10.0, -1.32, 21.32)
    """
    if n <= 0:
        return 0.0, (0.0, 0.0)
    mean = total / n
    var = max(squares / n - mean * mean, 0.0) * n / max(n - 1, 1)
    half = z * math.sqrt(var / n)
    return mean, (mean - half, mean + half)


@dataclass(frozen=True)
class ArmRow:
    """One arm's figures, each a (value, interval) or None when there is nothing to measure yet."""

    arm: str
    counts: Mapping[str, float]
    figures: Mapping[str, tuple[float, Interval] | None]


FRAUD_FIGURES = ("decline_rate", "review_rate", "precision", "recall", "cost_per_label", "rocauc")
RECO_FIGURES = ("hit_rate", "conversion")


def fraud_figures(c: Mapping[str, float], scores: Sequence[tuple[float, bool]]) -> dict:
    n, tp, fp, fn = c.get("n", 0), c.get("tp", 0), c.get("fp", 0), c.get("fn", 0)

    def rate(k: float, m: float) -> tuple[float, Interval] | None:
        return (k / m, wilson(k, m)) if m > 0 else None
    return {"decline_rate": rate(c.get("decline", 0), n), "review_rate": rate(c.get("review", 0), n),
            "precision": rate(tp, tp + fp), "recall": rate(tp, tp + fn),
            "cost_per_label": mean_interval(c.get("cost", 0), c.get("cost2", 0), c.get("labels", 0))
            if c.get("labels", 0) > 0 else None,
            "rocauc": rocauc(scores)}


def reco_figures(c: Mapping[str, float]) -> dict:
    m = c.get("outcomes", 0)
    return {"hit_rate": (c.get("hit", 0) / m, wilson(c.get("hit", 0), m)) if m > 0 else None,
            "conversion": (c.get("conv", 0) / m, wilson(c.get("conv", 0), m)) if m > 0 else None}


def arm_rows(model: str, counts: Mapping[str, Mapping[str, float]],
             scores: Mapping[str, Sequence[tuple[float, bool]]]) -> list[ArmRow]:
    return [ArmRow(arm, counts.get(arm, {}), fraud_figures(counts.get(arm, {}), scores.get(arm, ()))
                   if model == "fraud" else reco_figures(counts.get(arm, {}))) for arm in (CONTROL, TREATMENT)]


@dataclass(frozen=True)
class Verdict:
    action: str  # hold, rollback, ramp
    reason: str
    share: float | None = None  # the share to ramp to
    target: str = ""  # rollback: what broke, as a drift target ("score": review+decline rate; "error": cost, hits)
    difference: float = 0.0  # rollback: the treatment's figure minus control's (reco: control's hit rate minus)
    bound: float = 0.0  # rollback: the bound it broke


def _worse(t_k: float, t_n: float, c_k: float, c_n: float, bound: float, z: float) -> tuple[bool, float, float]:
    """Whether proportion t exceeds proportion c by more than ``bound`` beyond ``z`` standard errors."""
    pt, pc = t_k / t_n, c_k / c_n
    se = math.sqrt(pt * (1 - pt) / t_n + pc * (1 - pc) / c_n)
    return pt - pc - bound > z * se, pt, pc


def verdict(experiment: Experiment, counts: Mapping[str, Mapping[str, float]],
            scores: Mapping[str, Sequence[tuple[float, bool]]]) -> Verdict:
    """Roll back when a guardrail is broken, ramp when the treatment held long enough, else hold.

    Fraud guardrails: the share of decisions reviewed or declined (judged once each arm has
    ``min_decisions``), then the cost per labelled event (once each has ``min_labels``).
    Recommendations: the hit rate may not fall short of control's by more than ``max_flag_increase``.
    """
    g = experiment.guardrails
    c, t = counts.get(CONTROL, {}), counts.get(TREATMENT, {})
    if experiment.model == "fraud":
        c_n, t_n = c.get("n", 0), t.get("n", 0)
        if min(c_n, t_n) >= g.min_decisions:
            broken, pt, pc = _worse(t.get("review", 0) + t.get("decline", 0), t_n,
                                    c.get("review", 0) + c.get("decline", 0), c_n, g.max_flag_increase, g.z)
            if broken:
                return Verdict("rollback", f"guardrail: review+decline rate {pt:.3f} vs control {pc:.3f} "
                                           f"(bound +{g.max_flag_increase:g})", None, "score", pt - pc,
                               g.max_flag_increase)
        c_l, t_l = c.get("labels", 0), t.get("labels", 0)
        if min(c_l, t_l) >= g.min_labels:
            mt, (_, _) = mean_interval(t.get("cost", 0), t.get("cost2", 0), t_l)
            mc, _ = mean_interval(c.get("cost", 0), c.get("cost2", 0), c_l)
            var_t = max(t.get("cost2", 0) / t_l - mt * mt, 0.0) / t_l
            var_c = max(c.get("cost2", 0) / c_l - mc * mc, 0.0) / c_l
            if mt - mc - g.max_cost_increase > g.z * math.sqrt(var_t + var_c):
                return Verdict("rollback", f"guardrail: cost per labelled event {mt:.2f} vs control {mc:.2f} "
                                           f"(bound +{g.max_cost_increase:g})", None, "error", mt - mc,
                               g.max_cost_increase)
        held = t_l - experiment.stage_started
        # Ramped only once every guardrail could be judged (and held): never on labels alone.
        fair = min(c_l, t_l) >= g.min_labels and min(c_n, t_n) >= g.min_decisions
    else:
        c_m, t_m = c.get("outcomes", 0), t.get("outcomes", 0)
        if min(c_m, t_m) >= g.min_decisions:
            # a lower hit rate is worse: compare control's misses against the treatment's
            broken, pt, pc = _worse(t_m - t.get("hit", 0), t_m, c_m - c.get("hit", 0), c_m, g.max_flag_increase, g.z)
            if broken:
                return Verdict("rollback", f"guardrail: hit rate {1 - pt:.3f} vs control {1 - pc:.3f} "
                                           f"(bound -{g.max_flag_increase:g})", None, "error", pt - pc,
                               g.max_flag_increase)
        held = t_m - experiment.stage_started
        fair = min(c_m, t_m) >= g.min_decisions
    share = next_share(experiment.share)
    if g.ramp_after > 0 and fair and held >= g.ramp_after and share is not None:
        return Verdict("ramp", f"held its guardrails over {held:g} outcomes at {experiment.share:g} %", share)
    return Verdict("hold", "within its guardrails" if fair else "not enough outcomes yet")
