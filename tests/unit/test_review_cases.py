"""Review decisions become cases on review-cases, emitted with the decision; other outcomes do not."""

from __future__ import annotations

import dataclasses
import json

import jsonschema

from agents.fraud_outcome import FraudOutcome
from agents.metrics import Metrics
from schemas.contracts import load_schema
from schemas.records import FraudDecision, Reason, ReviewCase
from schemas.settings import Settings

DECISION = FraudDecision("e1", 0.6, "review", (Reason("amount_spike", "rule", 0.4),), "lr+hst+rules", "1.2.3",
                         False, False, 1.0, 1_795_514_400.0)


def test_a_review_decision_is_emitted_with_its_case_and_only_a_review() -> None:
    settings = Settings()
    outcome = FraudOutcome(decisions=[DECISION, dataclasses.replace(DECISION, event_id="e2", decision="approve"),
                                      dataclasses.replace(DECISION, event_id="e3", decision="decline")])
    emits = outcome.to_emits(settings, Metrics())
    cases = [e for e in emits if e.topic == settings.topics.review_cases]
    assert [e.key for e in cases] == [b"e1"]
    assert [e.topic for e in emits[:2]] == [settings.topics.fraud_decisions, settings.topics.review_cases]
    doc = json.loads(cases[0].value)
    jsonschema.validate(doc, load_schema("review_case.schema.json"))
    assert ReviewCase.from_dict(doc) == ReviewCase("e1", DECISION.decided_at, DECISION)
    assert doc["status"] == "open" and doc["decision"]["reasons"][0]["name"] == "amount_spike"
