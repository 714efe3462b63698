"""A small rules layer: known fraud shapes that must raise the score before any label exists.

Each rule reads the feature vector only (no state, no clock) and, when it fires, adds a bump
``b`` to the score as ``score = 1 - (1 - score) * (1 - b)``: several hits compound, the score
stays in [0, 1], and a rule can never lower a score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str
    bump: float
    fires: Callable[[Mapping[str, float]], bool]
    why: str


RULES: tuple[Rule, ...] = (
    Rule("card_testing", 0.6,
         lambda x: x["amount"] <= 5.0 and (x["user_count_1m"] >= 2 or x["new_device"] > 0),
         "tiny amounts in quick succession or from a new device"),
    Rule("account_takeover", 0.6,
         lambda x: x["new_device"] > 0 and x["new_country"] > 0 and x["user_history_count"] >= 1,
         "new device and new country on an established account"),
    Rule("foreign_burst", 0.5,
         lambda x: x["user_distinct_countries_24h"] >= 2 and x["user_distinct_devices_24h"] >= 2
         and x["amount"] >= 100.0,
         "large amount while the account hops countries and devices"),
    Rule("amount_spike", 0.4,
         lambda x: x["amount"] >= 150.0 and (x["user_amount_z"] >= 4.0 or x["user_amount_ratio"] >= 6.0),
         "amount far above the user's history"),
    Rule("velocity", 0.3,
         lambda x: x["user_count_1h"] >= 10,
         "ten or more transactions in an hour"),
)


def rule_hits(x: Mapping[str, float], rules: tuple[Rule, ...] = RULES) -> list[Rule]:
    """The rules that fire on feature vector ``x``.

    >>> x = {"user_count_1m": 4, "amount": 1.0, "new_device": 0, "new_country": 0, "user_history_count": 9,
    ...      "user_amount_z": 0.1, "user_amount_ratio": 0.1, "user_count_1h": 4,
    ...      "user_distinct_countries_24h": 1, "user_distinct_devices_24h": 1}
    >>> [r.name for r in rule_hits(x)]
    ['card_testing']
    """
    return [rule for rule in rules if rule.fires(x)]


def apply_bumps(score: float, hits: list[Rule]) -> float:
    """Compound rule bumps onto a score.

    >>> round(apply_bumps(0.1, [RULES[0]]), 2), round(apply_bumps(0.1, []), 2)
    (0.64, 0.1)
    """
    for rule in hits:
        score = 1.0 - (1.0 - score) * (1.0 - rule.bump)
    return score
