"""Rules as data: known fraud shapes that act on a decision before any label exists.

A rule set is a document (JSON or YAML, checked against ``schemas/rule_set.schema.json``) with a
``version`` and a list of rules. Each rule has a condition over the event's features and fields
(``online_models.rule_language``: no eval), an action and a mode:

- ``add_score`` adds a bump ``b`` as ``score = 1 - (1 - score) * (1 - b)``: several hits compound,
  the score stays in [0, 1], and a rule can never lower a score;
- ``review``, ``decline`` and ``allow`` force the outcome. ``allow`` (an allow-list) wins over
  everything, then ``decline``; ``review`` raises an approve to review and leaves a decline as it is;
- a rule in ``shadow`` mode is evaluated and reported but changes nothing.

A condition that cannot be evaluated on an event (a name the event lacks, a division by zero) does
not fire. The rules the worker starts with are ``default_rules.json`` next to this module.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jsonschema

from online_models.rule_language import Condition, ConditionError, ConditionRefused, compile_condition
from schemas.contracts import load_schema
from schemas.errors import StreamsenseError

DEFAULT_RULES_FILE = Path(__file__).with_name("default_rules.json")
_VALIDATOR = jsonschema.Draft202012Validator(load_schema("rule_set.schema.json"))


class RuleSetRefused(StreamsenseError):
    """A rules document that does not match the schema, or whose conditions are outside the language."""


@dataclass(frozen=True)
class Rule:
    name: str
    when: Condition
    action: str  # add_score, review, decline or allow
    bump: float = 0.0  # add_score only
    mode: str = "active"  # or shadow
    why: str = ""
    expected_rate: float | None = None  # share of decisions it fired on in its backtest (online_models.rule_watch)

    @property
    def reason_value(self) -> float:
        """What a decision's reason shows for this rule: its bump, or 1.0 for a forcing rule."""
        return self.bump if self.action == "add_score" else 1.0

    def fires(self, env: Mapping[str, Any]) -> bool:
        try:
            return self.when(env)
        except ConditionError:
            return False

    def to_doc(self) -> dict:
        doc = {"name": self.name, "when": self.when.text, "action": self.action, "mode": self.mode}
        if self.action == "add_score":
            doc["bump"] = self.bump
        if self.why:
            doc["why"] = self.why
        if self.expected_rate is not None:
            doc["expected_rate"] = self.expected_rate
        return doc


@dataclass(frozen=True)
class RuleOutcome:
    """What a rule set found on one event: the active hits (which act) and the shadow hits (reported only)."""

    hits: tuple[Rule, ...]
    shadow: tuple[Rule, ...]

    def apply(self, score: float) -> float:
        """Compound the active bumps onto ``score``.

        >>> rules = default_rule_set().rules
        >>> round(RuleOutcome(rules[:1], ()).apply(0.1), 2), round(RuleOutcome((), rules[:1]).apply(0.1), 2)
        (0.64, 0.1)
        """
        for rule in self.hits:
            if rule.action == "add_score":
                score = 1.0 - (1.0 - score) * (1.0 - rule.bump)
        return score

    def decide(self, by_score: str) -> str:
        """The outcome once the forcing rules have spoken (``by_score``: what the thresholds said).

        >>> allow = Rule("vip", compile_condition("True"), "allow")
        >>> review = Rule("odd", compile_condition("True"), "review")
        >>> RuleOutcome((review,), ()).decide("approve"), RuleOutcome((review,), ()).decide("decline")
        ('review', 'decline')
        >>> RuleOutcome((review, allow), ()).decide("decline")
        'approve'
        """
        forced = {rule.action for rule in self.hits}
        if "allow" in forced:
            return "approve"
        if "decline" in forced:
            return "decline"
        if "review" in forced and by_score == "approve":
            return "review"
        return by_score


@dataclass(frozen=True)
class RuleSet:
    version: str
    rules: tuple[Rule, ...]
    description: str = ""

    def evaluate(self, env: Mapping[str, Any]) -> RuleOutcome:
        """The rules that fire on ``env`` (the features, with the event's fields).

        >>> x = {"user_count_1m": 4, "amount": 1.0, "new_device": 0, "new_country": 0, "user_history_count": 9,
        ...      "user_amount_z": 0.1, "user_amount_ratio": 0.1, "user_count_1h": 4,
        ...      "user_distinct_countries_24h": 1, "user_distinct_devices_24h": 1}
        >>> [r.name for r in default_rule_set().evaluate(x).hits]
        ['card_testing']
        """
        fired = [rule for rule in self.rules if rule.fires(env)]
        return RuleOutcome(tuple(r for r in fired if r.mode == "active"), tuple(r for r in fired if r.mode == "shadow"))

    def with_modes(self, modes: Mapping[str, str]) -> RuleSet:
        """This rule set with some rules' modes changed (``{name: "shadow"}``); the version is kept."""
        return replace(self, rules=tuple(replace(r, mode=modes.get(r.name, r.mode)) for r in self.rules))

    def to_doc(self) -> dict:
        doc = {"version": self.version, "rules": [r.to_doc() for r in self.rules]}
        if self.description:
            doc["description"] = self.description
        return doc

    def to_json(self) -> bytes:
        return json.dumps(self.to_doc(), separators=(",", ":")).encode()

    @classmethod
    def from_doc(cls, doc: object) -> RuleSet:
        """A rule set from its document; raises RuleSetRefused naming what is wrong."""
        errors = sorted(_VALIDATOR.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            raise RuleSetRefused("; ".join(f"{'/'.join(map(str, e.absolute_path)) or 'the document'}: {e.message}"
                                           for e in errors[:5]))
        names = [r["name"] for r in doc["rules"]]
        if len(set(names)) != len(names):
            raise RuleSetRefused(f"rule names must be unique: {sorted({n for n in names if names.count(n) > 1})}")
        return cls(doc["version"], tuple(_rule(r) for r in doc["rules"]), doc.get("description", ""))

    @classmethod
    def from_json(cls, raw: bytes | str) -> RuleSet:
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise RuleSetRefused(f"not JSON: {exc}") from None
        return cls.from_doc(doc)


def _rule(doc: Mapping) -> Rule:
    try:
        when = compile_condition(doc["when"])
    except ConditionRefused as exc:
        raise RuleSetRefused(f"rule {doc['name']!r}: {exc}") from None
    expected = doc.get("expected_rate")
    return Rule(doc["name"], when, doc["action"], float(doc.get("bump", 0.0)), doc.get("mode", "active"),
                doc.get("why", ""), None if expected is None else float(expected))


@functools.cache
def default_rule_set() -> RuleSet:
    """The rules shipped with streamsense (``default_rules.json``): what a worker decides with until
    an operator publishes others."""
    return RuleSet.from_json(DEFAULT_RULES_FILE.read_bytes())


def rule_names(rules: Iterable[Rule]) -> tuple[str, ...]:
    return tuple(rule.name for rule in rules)
