"""A rule that suddenly fires on far more traffic than its backtest said is switched to shadow.

A rule set may say, per rule, ``expected_rate``: the share of decisions the rule fired on in its
backtest (``streamsense rules backtest`` prints it). The watch keeps which rules fired on the last
``window`` decisions; once it has seen ``min_seen`` of them, an active rule firing on more than
``max(factor * expected_rate, expected_rate + floor)`` of them is put in shadow (it keeps being
evaluated and reported, it stops acting) and a drift signal (target ``rule``) says so. A bad rule
(a typo in a threshold) then cannot decline a whole shop for longer than a window of decisions.

The switch is this worker's: it lasts until another rule-set version is published. Each worker
watches its own traffic, so each switches on its own evidence.

>>> from online_models.rules import RuleSet
>>> rules = RuleSet.from_doc({"version": "v1", "rules": [
...     {"name": "typo", "when": "amount > 1", "action": "decline", "expected_rate": 0.001}]})
>>> watch = RuleRateWatch(window=100, min_seen=50)
>>> for i in range(60):
...     rules, signals = watch.observe(rules, rules.evaluate({"amount": 5.0}), float(i), "1.0.0")
...     if signals:
...         print(i, signals[0].target, signals[0].name, signals[0].action)
49 rule typo switched to shadow
>>> rules.rules[0].mode
'shadow'
"""

from __future__ import annotations

from collections import Counter, deque

from online_models.rules import RuleOutcome, RuleSet
from schemas.records import DriftSignal


class RuleRateWatch:
    """Hit rates of the rules over the last ``window`` decisions, against their ``expected_rate``.

    Parameters
    ----------
    window
        Decisions the rates are measured over.
    min_seen
        Decisions seen (since the rule set was installed) before any rule is judged.
    factor, floor
        A rule is switched when its rate exceeds ``max(factor * expected_rate, expected_rate + floor)``.
    """

    def __init__(self, window: int = 1000, min_seen: int = 200, factor: float = 5.0, floor: float = 0.02) -> None:
        self.window = window
        self.min_seen = min_seen
        self.factor = factor
        self.floor = floor
        self._recent: deque[tuple[str, ...]] = deque(maxlen=window)
        self._counts: Counter[str] = Counter()
        self._version: str | None = None

    def limit(self, expected_rate: float) -> float:
        return max(self.factor * expected_rate, expected_rate + self.floor)

    def observe(self, rules: RuleSet, found: RuleOutcome, ts: float, model_version: str
                ) -> tuple[RuleSet, list[DriftSignal]]:
        """Count one decision's hits; returns the rule set to serve from now on and the signals raised."""
        if rules.version != self._version:  # a new rule set: its rates start afresh
            self._recent.clear()
            self._counts.clear()
            self._version = rules.version
        watched = tuple(r.name for r in found.hits if r.expected_rate is not None)
        if len(self._recent) == self.window:
            self._counts.subtract(self._recent[0])
        self._recent.append(watched)
        self._counts.update(watched)
        if len(self._recent) < self.min_seen or not watched:
            return rules, []
        seen = len(self._recent)
        tripped = {r.name: r for r in found.hits
                   if r.expected_rate is not None and self._counts[r.name] / seen > self.limit(r.expected_rate)}
        if not tripped:
            return rules, []
        signals = [DriftSignal(
            signal_id=f"rule-{rules.version}-{name}-{int(ts)}", target="rule", name=name,
            detector=f"hit rate over {self.window} decisions", statistic=round(self._counts[name] / seen, 6),
            threshold=round(self.limit(rule.expected_rate), 6), severity="critical", action="switched to shadow",
            model_version=model_version, detected_at=ts, observations=seen) for name, rule in tripped.items()]
        return rules.with_modes(dict.fromkeys(tripped, "shadow")), signals
