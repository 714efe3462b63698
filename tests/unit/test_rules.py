"""Rules as data: the condition language refuses what it must, rule sets are checked against their
schema, actions and modes do what the README says, and the shipped default rules decide exactly as
the Python rules they replaced did."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from agents.commands.rules import load_rules_file
from agents.sim.traffic import SIMULATED_LABEL_HORIZON_S, TrafficSimulator
from online_models.engine import FraudEngine
from online_models.replay import FraudReplay
from online_models.rule_language import MAX_NODES, ConditionError, ConditionRefused, compile_condition
from online_models.rules import DEFAULT_RULES_FILE, Rule, RuleSet, RuleSetRefused, default_rule_set
from schemas.contracts import load_schema
from schemas.records import FraudDecision, FraudLabel, Transaction
from schemas.settings import Settings

START = 1_700_000_000.0

# The rules as they were written in Python before they became data (online_models/rules.py at 9cf096d):
# the oracle the default rules file must match.
LEGACY = RuleSet("legacy", (
    Rule("card_testing", lambda x: x["amount"] <= 5.0 and (x["user_count_1m"] >= 2 or x["new_device"] > 0),
         "add_score", 0.6),
    Rule("account_takeover", lambda x: x["new_device"] > 0 and x["new_country"] > 0 and x["user_history_count"] >= 1,
         "add_score", 0.6),
    Rule("foreign_burst", lambda x: x["user_distinct_countries_24h"] >= 2 and x["user_distinct_devices_24h"] >= 2
         and x["amount"] >= 100.0, "add_score", 0.5),
    Rule("amount_spike",
         lambda x: x["amount"] >= 150.0 and (x["user_amount_z"] >= 4.0 or x["user_amount_ratio"] >= 6.0),
         "add_score", 0.4),
    Rule("velocity", lambda x: x["user_count_1h"] >= 10, "add_score", 0.3),
))


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "amount.real > 1", "features['x'] > 1", "(lambda: 1)()",
    "[a for a in b]", "amount ** 1000000", "(x := 1)", "f'{amount}' == '1'", "amount if x else y",
    "open('/etc/passwd')", "x is None", "amount << 3", "{'a': 1}", "*a", "", "   ",
    "amount > 1 and " * 200 + "True", "not " * 100 + "True", "-" * 1990 + "1", "[" * 150 + "]" * 150,
    "country in [country]",
])
def test_conditions_outside_the_language_are_refused(text: str) -> None:
    with pytest.raises(ConditionRefused):
        compile_condition(text)


def test_size_is_bounded_by_nodes_as_well_as_characters() -> None:
    wide = " or ".join(f"a{i} > 0" for i in range(MAX_NODES // 3 + 1))
    with pytest.raises(ConditionRefused, match="too large"):
        compile_condition(wide)


@pytest.mark.parametrize("text, env, expected", [
    ("1 < amount <= 5", {"amount": 5}, True),
    ("1 < amount <= 5", {"amount": 1}, False),
    ("amount * 2 - 1 > 8 / 2 % 3", {"amount": 1.5}, True),
    ("-amount < 0 and abs(-amount) == amount", {"amount": 3.0}, True),
    ("max(amount, 10) == 10 and min(amount, 10) == amount", {"amount": 3.0}, True),
    ("country not in ('FR', 'DE') or channel == 'pos'", {"country": "FR", "channel": "pos"}, True),
    ("country not in ('FR', 'DE') or channel == 'pos'", {"country": "FR", "channel": "web"}, False),
    ("not (new_device > 0)", {"new_device": 1.0}, False),
    ("user_id in ['vip-1', 'vip-2']", {"user_id": "vip-2"}, True),
])
def test_conditions_evaluate_like_their_reading(text: str, env: dict, expected: bool) -> None:
    assert compile_condition(text)(env) is expected


@pytest.mark.parametrize("text, env", [
    ("amount > 1", {}),  # a name the event does not have
    ("amount / zero > 1", {"amount": 1.0, "zero": 0.0}),
    ("country * 1000000000 == ''", {"country": "FR"}),  # never builds the string
    ("country > 1", {"country": "FR"}),
    ("abs(country) > 1", {"country": "FR"}),
])
def test_a_condition_that_cannot_be_evaluated_raises_and_its_rule_does_not_fire(text: str, env: dict) -> None:
    with pytest.raises(ConditionError):
        compile_condition(text)(env)
    assert not Rule("r", compile_condition(text), "decline").fires(env)


def rule_doc(**overrides) -> dict:
    return {"version": "t-1", "rules": [{"name": "r", "when": "amount > 1", "action": "add_score", "bump": 0.5,
                                         **overrides}]}


@pytest.mark.parametrize("doc, complaint", [
    ({"rules": []}, "'version' is a required property"),
    (rule_doc(action="block"), "is not one of"),
    (rule_doc(action="review"), "should not be valid"),  # a bump on a forcing rule
    ({"version": "t", "rules": [{"name": "r", "when": "amount > 1", "action": "add_score"}]}, "'bump' is a required"),
    (rule_doc(bump=1.5), "maximum"),
    (rule_doc(mode="loud"), "is not one of"),
    (rule_doc(when="amount.__class__"), "not part of the rules language"),
    (rule_doc(extra=1), "Additional properties"),
    ({"version": "t", "rules": [rule_doc()["rules"][0]] * 2}, "unique"),
])
def test_rule_sets_outside_the_schema_or_language_are_refused_with_the_reason(doc: dict, complaint: str) -> None:
    with pytest.raises(RuleSetRefused, match=complaint):
        RuleSet.from_doc(doc)


def test_the_default_rules_file_matches_the_schema_and_round_trips() -> None:
    doc = json.loads(DEFAULT_RULES_FILE.read_text())
    jsonschema.validate(doc, load_schema("rule_set.schema.json"))
    rules = default_rule_set()
    assert RuleSet.from_json(rules.to_json()).to_doc() == rules.to_doc()


def tx(event_id: str, ts: float, **overrides) -> Transaction:
    fields = dict(event_id=event_id, ts=ts, user_id="alice", merchant_id="m1", amount=25.0, currency="EUR",
                  country="FR", channel="app", device_id="d1")
    return Transaction(**{**fields, **overrides})


def decide_with(rules: list[dict], **overrides) -> FraudDecision:
    engine = FraudEngine.from_settings(Settings(), rules=RuleSet.from_doc({"version": "t-7", "rules": rules}))
    return engine.score(tx("e1", START, **overrides), None, {}, decided_at=START).decision


def test_forcing_actions_allow_wins_then_decline_then_review() -> None:
    review = {"name": "odd_channel", "when": "channel == 'phone'", "action": "review"}
    decline = {"name": "blocked_country", "when": "country in ['KP']", "action": "decline"}
    allow = {"name": "vip", "when": "user_id in ['alice']", "action": "allow"}
    assert decide_with([review], channel="phone").decision == "review"
    assert decide_with([review], channel="web").decision == "approve"
    assert decide_with([review, decline], channel="phone", country="KP").decision == "decline"
    both = decide_with([review, decline, allow], channel="phone", country="KP")
    assert both.decision == "approve" and both.rules.fired == ("odd_channel", "blocked_country", "vip")
    assert [r.name for r in both.reasons if r.kind == "rule"] == ["odd_channel", "blocked_country", "vip"]


def test_a_shadow_rule_is_reported_and_changes_nothing() -> None:
    shadow = {"name": "would_block", "when": "amount > 1", "action": "decline", "mode": "shadow"}
    bump = {"name": "would_bump", "when": "amount > 1", "action": "add_score", "bump": 0.9, "mode": "shadow"}
    quiet = decide_with([])
    d = decide_with([shadow, bump])
    assert (d.decision, d.score) == (quiet.decision, quiet.score) == ("approve", quiet.score)
    assert d.rules.version == "t-7" and d.rules.fired == () and d.rules.shadow == ("would_block", "would_bump")
    assert not [r for r in d.reasons if r.kind == "rule"]


def test_decisions_name_the_rule_set_and_validate_against_the_decision_schema() -> None:
    d = decide_with([{"name": "big", "when": "amount >= 20", "action": "add_score", "bump": 0.2}])
    doc = json.loads(d.to_json())
    assert doc["rules"] == {"version": "t-7", "fired": ["big"], "shadow": []}
    jsonschema.validate(doc, load_schema("fraud_decision.schema.json"))
    assert FraudDecision.from_dict(doc) == d
    older = {k: v for k, v in doc.items() if k != "rules"}  # a decision stored before rules were data
    jsonschema.validate(older, load_schema("fraud_decision.schema.json"))
    assert FraudDecision.from_dict(older) == dataclasses.replace(d, rules=None)


@pytest.mark.slow  # a simulator run: make test runs it, make test-fast does not
def test_the_default_rules_file_decides_as_the_python_rules_did_on_the_simulator() -> None:
    """Two engines, the same seed, the same stream; one with the shipped rules file, one with the Python
    rules it replaced. Every decision equal (but for the rule-set version it names), every rule hit."""
    config = Settings(seed=42, label_horizon_s=SIMULATED_LABEL_HORIZON_S)
    data = FraudReplay(FraudEngine.from_settings(config), config.label_horizon_s)
    python = FraudReplay(FraudEngine.from_settings(config, rules=LEGACY), config.label_horizon_s)
    hits, decisions = Counter(), 0
    for ev in TrafficSimulator(seed=42, start_ts=START).events():
        if ev.kind == "label":
            label = FraudLabel(ev.payload["event_id"], ev.payload["is_fraud"], float(ev.payload["ts"]))
            assert data.label(label) == python.label(label)
            continue
        t = Transaction.from_dict(ev.payload)
        a, b = data.transaction(t), python.transaction(t)
        assert a.rules.version == "default-1" and b.rules.version == "legacy"
        assert dataclasses.replace(a, rules=None) == dataclasses.replace(b, rules=None)
        hits.update(a.rules.fired)
        decisions += 1
        if decisions == 2000:
            break
    assert len(hits) >= 3 and data.labels_learned > 0, hits  # rules and labels both took part


# Each feature the rules read, at each of its thresholds and just below it.
THRESHOLDS = {"amount": (5.0, 100.0, 150.0), "user_count_1m": (2,), "new_device": (1,), "new_country": (1,),
              "user_history_count": (1,), "user_distinct_countries_24h": (2,), "user_distinct_devices_24h": (2,),
              "user_amount_z": (4.0,), "user_amount_ratio": (6.0,), "user_count_1h": (10,)}


def test_the_default_rules_file_fires_exactly_where_the_python_rules_did() -> None:
    """Every rule, foreign_burst included (rare on the simulator), on every corner of its thresholds."""
    names = list(THRESHOLDS)
    values_of = [sorted({v for edge in edges for v in (edge, edge - 0.5)}) for edges in THRESHOLDS.values()]
    grid = itertools.product(*values_of)
    fired = Counter()
    for values in grid:
        x = dict(zip(names, values, strict=True))
        hits = [r.name for r in default_rule_set().evaluate(x).hits]
        assert hits == [r.name for r in LEGACY.evaluate(x).hits], x
        fired.update(hits)
    assert set(fired) == {rule.name for rule in LEGACY.rules}


def test_the_readmes_example_rule_set_loads_and_acts_as_described() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Rules as data"):]
    doc = json.loads(section[section.index("```json") + 7:section.index("```", section.index("```json") + 7)])
    rules = {r.name: r for r in RuleSet.from_doc(doc).rules}
    assert decide_with([doc["rules"][1]], country="KP").decision == "decline"
    assert decide_with([doc["rules"][1], doc["rules"][3]], country="KP", user_id="u-0001").decision == "approve"
    assert rules["try_me"].mode == "shadow" and rules["card_testing"].bump == 0.6


def test_rules_files_load_from_json_and_yaml_and_a_bad_one_is_refused_by_name(tmp_path) -> None:
    yaml = pytest.importorskip("yaml")
    doc = default_rule_set().to_doc()
    (tmp_path / "r.json").write_text(json.dumps(doc))
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "bad.yml").write_text("version: v\nrules:\n  - {name: x, when: 'amount.real > 1', action: allow}\n")
    assert load_rules_file(str(tmp_path / "r.json")).to_doc() == load_rules_file(str(tmp_path / "r.yaml")).to_doc()
    with pytest.raises(SystemExit, match="bad.yml refused: rule 'x': Attribute is not part"):
        load_rules_file(str(tmp_path / "bad.yml"))
    with pytest.raises(SystemExit, match="missing.json refused"):
        load_rules_file(str(tmp_path / "missing.json"))


def test_the_dev_dashboard_shows_the_rule_set_version() -> None:
    from agents.dev.dashboard import Figures
    from agents.sim.simulator import Truth

    figures, truth = Figures(), Truth()
    figures.add_decision(json.loads(decide_with([]).to_json()), truth, START)
    assert "model         lr+hst+rules v1.0.0  rules t-7" in figures.render(truth, START)
