"""Each topic's contract: its JSON Schema file, its key, and one example message (shown in the README)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from schemas.errors import NotFinite
from schemas.records import (
    DeadLetter,
    DriftSignal,
    ExperimentEvent,
    FraudDecision,
    FraudLabel,
    Interaction,
    ModelEvent,
    Reason,
    RecoItem,
    RecoRequest,
    Recommendation,
    ReviewCase,
    RulesApplied,
    Transaction,
)
from schemas.settings import Settings
from schemas.validation import MAX_FEATURES, MAX_FEATURE_ABS, MAX_FEATURE_NAME_CHARS, MAX_ID_CHARS, SHAPES, Shape

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Contract:
    topic: str
    key: str
    schema_file: str
    example: dict


@cache
def load_schema(schema_file: str) -> dict:
    return json.loads((HERE / schema_file).read_text())


CONTRACTS = (
    Contract("transactions", "user_id", "transaction.schema.json", Transaction(
        event_id="tx-20261124-000042", ts=1795514400.0, user_id="u-1842", merchant_id="m-0077", amount=42.5,
        currency="EUR", country="FR", channel="app", device_id="d-1842-a").to_dict()),
    Contract("fraud-labels", "event_id", "fraud_label.schema.json", FraudLabel(
        event_id="tx-20261124-000042", is_fraud=True, ts=1795521600.0).to_dict()),
    Contract("fraud-decisions", "event_id", "fraud_decision.schema.json", FraudDecision(
        event_id="tx-20261124-000042", score=0.912, decision="decline",
        reasons=(Reason("card_testing", "rule", 0.6), Reason("anomaly", "anomaly", 0.97),
                 Reason("user_count_1m", "feature", 1.84)),
        model="lr+hst+rules", model_version="1.5120.88016", degraded=False, late=False, latency_ms=3.2,
        decided_at=1795514400.41, rules=RulesApplied("default-1", ("card_testing",), ()),
        experiment="exp-fraud-5f3a9c", arm="control").to_dict()),
    Contract("review-cases", "event_id", "review_case.schema.json", ReviewCase(
        event_id="tx-20261124-000057", opened_at=1795514460.2, decision=FraudDecision(
            event_id="tx-20261124-000057", score=0.63, decision="review",
            reasons=(Reason("amount_spike", "rule", 0.4), Reason("user_amount_z", "feature", 1.1)),
            model="lr+hst+rules", model_version="1.5120.88016", degraded=False, late=False, latency_ms=2.9,
            decided_at=1795514460.2, rules=RulesApplied("default-1", ("amount_spike",), ()))).to_dict()),
    Contract("interactions", "user_id", "interaction.schema.json", Interaction(
        event_id="int-000917", ts=1795514460.0, user_id="u-1842", item_id="item-0311", kind="rating",
        rating=4.0).to_dict()),
    Contract("reco-requests", "user_id", "reco_request.schema.json", RecoRequest(
        request_id="req-5521", user_id="u-1842", k=3, ts=1795514470.0, exclude=("item-0311",)).to_dict()),
    Contract("recommendations", "user_id", "recommendation.schema.json", Recommendation(
        request_id="req-5521", user_id="u-1842",
        items=(RecoItem("item-0102", 4.61), RecoItem("item-0057", 4.42), RecoItem("item-0764", 4.05)),
        strategy="personal", model="biased-mf", model_version="1.20931", latency_ms=0.8,
        generated_at=1795514470.2, propensity=0.95).to_dict()),
    Contract("drift-signals", "target/name", "drift_signal.schema.json", DriftSignal(
        signal_id="drift-feature-user_amount_z-3", target="feature", name="user_amount_z",
        detector="PSI(current=1000, reference=2000 decisions, on=0.25, off=0.1)", statistic=0.4155, threshold=0.25,
        severity="warning", action="alerted", model_version="1.5120.88016", detected_at=1795514400.0,
        observations=18211, reference=0.091967, current=1.088166, moved=(
            {"name": "user_amount_z", "psi": 0.4155, "reference": 0.091967, "current": 1.088166},
            {"name": "log_amount", "psi": 0.2189, "reference": 3.371, "current": 3.712})).to_dict()),
    Contract("model-events", "role", "model_event.schema.json", ModelEvent(
        event="rolled_back", role="fraud", version=41, model_version="1.5120.88016", previous_version=42,
        by="operator@ops-host", at=1795514500.0).to_dict()),
    Contract("model-events", "role", "experiment_event.schema.json", ExperimentEvent(
        event="experiment_rolled_back", role="fraud", experiment="exp-fraud-5f3a9c", treatment="43", share=0.0,
        reason="guardrail: review+decline rate 0.214 vs control 0.061 (bound +0.05)", by="worker@node-2",
        at=1795515100.0).to_dict()),
    Contract("dead-letters", "the original message key", "dead_letter.schema.json", DeadLetter.from_raw(
        b'{"event_id": "tx-1", "amount": NaN}', key=b"u-1842", source_topic="transactions", partition=2,
        offset=1187, stage="validate", error=NotFinite("not_finite", None, "NaN is not a valid number in a message"),
        cap=4096, failed_at=1795514400.5).to_dict()),
)


UNKNOWN_VALUE_OUTCOME = {"channel": "decided, with the reason `unknown_channel` naming the value",
                         "kind": "counted, not learned (it could mean interest or its opposite)"}


def openness(shape: Shape) -> str:
    """Which of an input's fields are closed, which are open, and what its key must be.

    >>> from schemas.validation import LABELS
    >>> text = openness(LABELS)
    >>> text[:text.index(" (")], text[text.index("Key:"):text.index(";", text.index("Key:"))]
    ('Closed: event_id, is_fraud, ts', 'Key: the message key must be its event_id')
    """
    closed = [name for name in (*shape.required, *shape.optional) if name not in shape.categories]
    opened = ["added fields (ignored, counted in `streamsense_unknown_fields_total`)"]
    opened += [f"`{name}` beyond {', '.join(known)}: {UNKNOWN_VALUE_OUTCOME[name]}"
               for name, known in shape.categories.items()]
    return (f"Closed: {', '.join(closed)} (a value outside the schema is a dead letter). Open: {'; '.join(opened)}. "
            f"Key: the message key must be its {shape.key_field}; another key, or none, is a `key_mismatch` "
            "dead letter.")


def readme_section() -> str:
    """The README's "Topics and messages" examples, generated from the contracts above.

    >>> "fraud-decisions" in readme_section()
    True
    """
    shapes = {shape.topic: shape for shape in SHAPES}
    parts = []
    for c in CONTRACTS:
        part = f"**{c.topic}** (key: {c.key}; schema: `schemas/{c.schema_file}`)\n\n"
        if c.topic in shapes:
            part += openness(shapes[c.topic]) + "\n\n"
        parts.append(part + f"```json\n{json.dumps(c.example, indent=2)}\n```")
    defaults = Settings()
    parts.append(f"Every input timestamp, epoch seconds or ISO-8601, must lie within `max_past_s` "
                 f"({defaults.max_past_s / 86400:g} days) behind and `max_future_s` ({defaults.max_future_s:,.0f} s) "
                 f"ahead of the worker's wall clock. Strings must be text UTF-8 can encode (no lone "
                 f"surrogates); ids have 1 to {MAX_ID_CHARS} printable characters; `features` has at most "
                 f"{MAX_FEATURES} entries named by 1 to {MAX_FEATURE_NAME_CHARS} of `A-Z a-z 0-9 _ . -`, each a "
                 f"finite number within +-{MAX_FEATURE_ABS:,.0f}. `STREAMSENSE_STRICT_INPUT=true` closes the open "
                 f"fields: an added field or an unknown value is then a dead letter.")
    return "\n\n".join(parts)
