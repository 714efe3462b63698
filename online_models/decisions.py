"""From a score to a decision, and the reasons shown with it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from online_models.rules import Rule
from schemas.records import Reason


def decide(score: float, review: float, decline: float) -> str:
    """Map a score in [0, 1] to approve / review / decline.

    >>> [decide(s, 0.5, 0.85) for s in (0.1, 0.5, 0.9)]
    ['approve', 'review', 'decline']
    """
    if score >= decline:
        return "decline"
    if score >= review:
        return "review"
    return "approve"


def reasons(contributions: Mapping[str, float], hits: Sequence[Rule], anomaly: float,
            *, top: int = 3, flags: Sequence[str] = ()) -> tuple[Reason, ...]:
    """Rule hits first, then the anomaly score when notable, then the top positive feature contributions.

    >>> from online_models.rules import default_rule_set
    >>> takeover = default_rule_set().rules[1]
    >>> [r.name for r in reasons({"amount": 1.2, "hour_sin": -0.3, "new_device": 0.4}, [takeover], 0.9)]
    ['account_takeover', 'anomaly', 'amount', 'new_device']
    """
    out = [Reason(rule.name, "rule", rule.reason_value) for rule in hits]
    out.extend(Reason(flag, "flag", 1.0) for flag in flags)
    if anomaly >= 0.5:
        out.append(Reason("anomaly", "anomaly", round(anomaly, 4)))
    ranked = sorted(((v, k) for k, v in contributions.items() if v > 0), reverse=True)[:top]
    out.extend(Reason(name, "feature", round(value, 4)) for value, name in ranked)
    return tuple(out)
