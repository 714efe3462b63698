"""Contracts and strict decoding: every bad input gets a typed refusal, never another exception."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema
import pytest
from budget import examples
from hypothesis import example, given, settings, strategies as st

from online_models.engine import FraudEngine
from schemas import errors
from schemas.contracts import CONTRACTS, load_schema, readme_section
from schemas.records import (
    CHANNELS,
    DeadLetter,
    DriftSignal,
    ExperimentEvent,
    FraudDecision,
    FraudLabel,
    Interaction,
    ModelEvent,
    RecoRequest,
    Recommendation,
    ReviewCase,
    Transaction,
)
from schemas.settings import Settings
from schemas.validation import (
    INTERACTIONS,
    LABELS,
    RECO_REQUESTS,
    TRANSACTIONS,
    UNKEYED,
    InputRules,
    Shape,
    decode as decode_shape,
)

NOW = 1_795_514_400.0
RULES = InputRules(max_bytes=65536, max_past_s=30 * 86400.0, max_future_s=3600.0)
README = Path(__file__).resolve().parents[2] / "README.md"
RECORDS = {"transaction": Transaction, "fraud_label": FraudLabel, "fraud_decision": FraudDecision,
           "dead_letter": DeadLetter, "interaction": Interaction, "reco_request": RecoRequest,
           "recommendation": Recommendation, "drift_signal": DriftSignal,
           "model_event": ModelEvent, "experiment_event": ExperimentEvent, "review_case": ReviewCase}


def valid_tx(**changes) -> dict:
    return {"event_id": "e1", "ts": NOW - 10, "user_id": "u1", "merchant_id": "m1", "amount": 12.5,
            "currency": "EUR", "country": "FR", "channel": "web", "device_id": "d1", **changes}


def record(shape: Shape, raw: bytes, rules: InputRules = RULES):
    return decode_shape(shape, raw, rules=rules, now=NOW, key=UNKEYED).record


def decode(doc_or_raw, rules: InputRules = RULES) -> Transaction:
    raw = doc_or_raw if isinstance(doc_or_raw, bytes) else json.dumps(doc_or_raw).encode()
    return record(TRANSACTIONS, raw, rules)


def check(schema_file: str, doc: dict) -> None:
    jsonschema.validate(doc, load_schema(schema_file), format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.schema_file)
def test_each_example_matches_its_schema_and_round_trips(contract) -> None:
    check(contract.schema_file, contract.example)
    record = RECORDS[contract.schema_file.removesuffix(".schema.json")].from_dict(contract.example)
    assert json.loads(record.to_json()) == contract.example


def test_the_readme_shows_the_generated_examples() -> None:
    assert readme_section() in README.read_text()


def test_a_real_decision_and_a_real_dead_letter_match_their_schemas() -> None:
    tx = decode(valid_tx())
    decision = FraudEngine.from_settings(Settings()).score(tx, None, {}, decided_at=NOW).decision
    check("fraud_decision.schema.json", decision.to_dict())
    letter = DeadLetter.from_raw(b"x" * 5000, key=None, source_topic="transactions", partition=0, offset=3,
                                 stage="validate", error=ValueError("boom"), cap=4096, failed_at=NOW)
    assert letter.truncated and letter.raw_size == 5000
    check("dead_letter.schema.json", letter.to_dict())


BAD = [
    (b"x" * 70000, errors.TooLarge, None),
    (b"{oops", errors.MalformedJson, None),
    (b"\xff\xfe{}", errors.NotUtf8, None),
    (b"[" * 60_000, errors.MalformedJson, None),
    (b"[1, 2]", errors.NotAnObject, None),
    (json.dumps(valid_tx()).replace("12.5", "NaN").encode(), errors.NotFinite, None),
    (json.dumps(valid_tx()).replace("12.5", "Infinity").encode(), errors.NotFinite, None),
    (json.dumps(valid_tx()).replace("12.5", "1e400").encode(), errors.NotFinite, "amount"),
    (json.dumps(valid_tx()).replace("12.5", "9" * 5000).encode(), errors.MalformedJson, None),
    (valid_tx(amount=True), errors.WrongType, "amount"),
    (valid_tx(amount="12"), errors.WrongType, "amount"),
    (valid_tx(amount=-1), errors.OutOfRange, "amount"),
    (valid_tx(user_id=7), errors.WrongType, "user_id"),
    (valid_tx(user_id=""), errors.TooLong, "user_id"),
    (valid_tx(user_id="u" * 129), errors.TooLong, "user_id"),
    (valid_tx(user_id="a\nb"), errors.WrongType, "user_id"),
    (valid_tx(currency="euro"), errors.UnknownEnumValue, "currency"),
    ({k: v for k, v in valid_tx().items() if k != "merchant_id"}, errors.MissingField, "merchant_id"),
    (valid_tx(ts=NOW + 7200), errors.OutOfRange, "ts"),
    (valid_tx(ts=NOW - 40 * 86400), errors.OutOfRange, "ts"),
    (valid_tx(ts="2026-11-24T10:00:00"), errors.BadTimestamp, "ts"),
    (valid_tx(ts="yesterday"), errors.BadTimestamp, "ts"),
    (valid_tx(features={"v1": "x"}), errors.WrongType, "features.v1"),
    (valid_tx(features={f"v{i}": 1.0 for i in range(300)}), errors.TooLong, "features"),
    (valid_tx(features=[1, 2]), errors.WrongType, "features"),
]


@pytest.mark.parametrize("raw, exc_type, field", BAD, ids=[f"{e.__name__}-{i}" for i, (_, e, _) in enumerate(BAD)])
def test_bad_input_gets_a_typed_refusal_naming_the_field(raw, exc_type, field) -> None:
    with pytest.raises(exc_type) as caught:
        decode(raw)
    assert caught.value.field == field and caught.value.code and str(caught.value)


def test_iso_timestamps_with_a_zone_and_pass_through_features_are_accepted() -> None:
    tx = decode(valid_tx(ts="2026-11-24T09:59:00+00:00", features={"V1": -1.5, "V2": 3}))
    assert tx.ts == NOW - 60 and dict(tx.features) == {"V1": -1.5, "V2": 3.0}


def test_labels_are_strict_too() -> None:
    label = record(LABELS, b'{"event_id": "e1", "is_fraud": false, "ts": 1795514000}')
    assert label == FraudLabel("e1", False, 1795514000.0)
    with pytest.raises(errors.WrongType):
        record(LABELS, b'{"event_id": "e1", "is_fraud": "yes", "ts": 1795514000}')
    with pytest.raises(errors.MissingField):
        record(LABELS, b'{"event_id": "e1", "ts": 1795514000}')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)


def record_or_refusal(decoder, raw: bytes, record_type: type, schema_file: str):
    """The decoding property: ``raw`` gives either a typed refusal that names its code, or a record
    of ``record_type`` that its JSON Schema accepts and that decodes back to itself."""
    try:
        record = decoder(raw)
    except errors.InvalidEvent as exc:
        assert type(exc) is not errors.InvalidEvent and exc.code and str(exc), exc  # a specific, named refusal
        assert exc.field is None or isinstance(exc.field, str)
        return exc
    assert type(record) is record_type
    check(schema_file, record.to_dict())  # what the decoder accepts, the contract accepts
    assert decoder(record.to_json()) == record
    return record


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300))
@example(json.dumps(valid_tx()).encode())  # random bytes are almost never a record: show the other branch
@example(b'{"event_id": "e1", "is_fraud": true, "ts": 1795514000}')
def test_any_bytes_give_a_record_or_a_typed_refusal(raw: bytes) -> None:
    record_or_refusal(decode, raw, Transaction, "transaction.schema.json")
    record_or_refusal(lambda b: record(LABELS, b), raw, FraudLabel, "fraud_label.schema.json")


@settings(max_examples=examples(300), deadline=None)
@given(st.dictionaries(st.sampled_from(list(valid_tx()) + ["features", "x"]), json_values, max_size=10))
def test_any_json_object_gives_a_record_or_a_typed_refusal(doc: dict) -> None:
    sent = {**valid_tx(), **doc}
    outcome = record_or_refusal(decode, json.dumps(sent).encode(), Transaction, "transaction.schema.json")
    if isinstance(outcome, Transaction):  # accepted: the record carries what was sent
        assert (outcome.event_id, outcome.user_id, outcome.merchant_id) == (sent["event_id"], sent["user_id"],
                                                                            sent["merchant_id"])


# What the decoder calls printable (str.isprintable): no control, format, unassigned or separator characters.
printable = st.characters(min_codepoint=32, max_codepoint=0x2FFF).filter(str.isprintable)


@settings(max_examples=examples(200), deadline=None)
@given(amount=st.floats(0, 1e9), channel=st.sampled_from(CHANNELS), offset=st.floats(-29 * 86400, 3500),
       user=st.text(printable, min_size=1, max_size=128),
       features=st.dictionaries(st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True),
                                st.floats(-1e9, 1e9), max_size=5))
def test_generated_valid_transactions_pass_both_the_decoder_and_the_schema(amount, channel, offset, user,
                                                                           features) -> None:
    doc = valid_tx(amount=amount, channel=channel, ts=NOW + offset, user_id=user, features=features)
    tx = decode(doc)
    check("transaction.schema.json", doc)
    assert tx.amount == amount and math.isfinite(tx.ts)


@pytest.mark.parametrize("raw, exc_type, field", [
    (b'{"event_id": "i", "ts": 1795514000, "user_id": "u", "item_id": "a", "kind": "view", "rating": 3}',
     errors.UnknownField, "rating"),
    (b'{"event_id": "i", "ts": 1795514000, "user_id": "u", "item_id": "a", "kind": "rating"}',
     errors.MissingField, "rating"),
    (b'{"event_id": "i", "ts": 1795514000, "user_id": "u", "item_id": "a", "kind": "rating", "rating": NaN}',
     errors.NotFinite, None),
    (b'{"event_id": "i", "ts": 1795514000, "user_id": "u", "kind": "view"}', errors.MissingField, "item_id"),
    (b'{"event_id": "i", "ts": 1, "user_id": "u", "item_id": "a", "kind": "view"}', errors.OutOfRange, "ts"),
])
def test_bad_interactions_are_refused(raw, exc_type, field) -> None:
    with pytest.raises(exc_type) as caught:
        record(INTERACTIONS, raw)
    assert caught.value.field == field


@pytest.mark.parametrize("raw, exc_type, field", [
    (b'{"request_id": "r", "user_id": "u", "k": 0, "ts": 1795514000}', errors.OutOfRange, "k"),
    (b'{"request_id": "r", "user_id": "u", "k": 2.5, "ts": 1795514000}', errors.WrongType, "k"),
    (b'{"request_id": "r", "user_id": "u", "k": 5, "ts": 1795514000, "exclude": "a"}', errors.WrongType, "exclude"),
    (b'{"request_id": "r", "user_id": "u", "k": 5, "ts": 1795514000, "exclude": [1]}', errors.WrongType,
     "exclude[]"),
    (b'{"request_id": "r", "user_id": "u", "k": 5, "ts": "9999-12-31T23:59:59Z"}', errors.OutOfRange, "ts"),
])
def test_bad_reco_requests_are_refused(raw, exc_type, field) -> None:
    with pytest.raises(exc_type) as caught:
        record(RECO_REQUESTS, raw)
    assert caught.value.field == field


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=200))
@example(b'{"event_id": "i", "ts": 1795514000, "user_id": "u", "item_id": "a", "kind": "view"}')
@example(b'{"request_id": "r", "user_id": "u", "k": 5, "ts": 1795514000}')
def test_any_bytes_give_an_interaction_a_request_or_a_typed_refusal(raw: bytes) -> None:
    record_or_refusal(lambda b: record(INTERACTIONS, b), raw, Interaction, "interaction.schema.json")
    record_or_refusal(lambda b: record(RECO_REQUESTS, b), raw, RecoRequest, "reco_request.schema.json")
