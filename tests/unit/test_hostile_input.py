"""Hostile values of every input field, on every input topic: each input gives exactly one outcome,
a record inside the closed domain or a typed refusal (``InvalidEvent``), never another exception."""

from __future__ import annotations

import json
import math

import pytest
from budget import examples
from hostile_values import encode, hostile_documents, hostile_values
from hypothesis import given, settings, strategies as st

from schemas import errors
from schemas.contracts import load_schema
from schemas.records import CHANNELS, INTERACTION_KINDS, Transaction, unknown_value_reasons
from schemas.settings import Settings, SettingsError
from schemas.validation import (
    INTERACTIONS,
    LABELS,
    MAX_FEATURE_ABS,
    RECO_REQUESTS,
    SHAPES,
    TRANSACTIONS,
    UNKEYED,
    InputRules,
    Shape,
    decode,
)

NOW = 1_795_514_400.0
RULES = InputRules(max_bytes=65536, max_past_s=30 * 86400.0, max_future_s=3600.0)
STRICT = InputRules(max_bytes=65536, max_past_s=30 * 86400.0, max_future_s=3600.0, strict=True)
SCHEMA_FILES = {"transactions": "transaction.schema.json", "fraud-labels": "fraud_label.schema.json",
                "interactions": "interaction.schema.json", "reco-requests": "reco_request.schema.json"}


def valid(shape: Shape) -> dict:
    return {
        "transactions": {"event_id": "e1", "ts": NOW - 10, "user_id": "u1", "merchant_id": "m1", "amount": 12.5,
                         "currency": "EUR", "country": "FR", "channel": "web", "device_id": "d1",
                         "features": {"V1": -1.5}},
        "fraud-labels": {"event_id": "e1", "is_fraud": True, "ts": NOW - 10},
        "interactions": {"event_id": "i1", "ts": NOW - 10, "user_id": "u1", "item_id": "a", "kind": "rating",
                         "rating": 4.0},
        "reco-requests": {"request_id": "r1", "user_id": "u1", "k": 5, "ts": NOW - 10, "exclude": ["a"]},
    }[shape.topic]


def key_of(shape: Shape, doc: dict) -> bytes:
    return str(doc[shape.key_field]).encode()


def run(shape: Shape, raw: bytes, key, rules: InputRules = RULES):
    """The one outcome of an input: ("record", Decoded) or ("refused", InvalidEvent)."""
    try:
        return "record", decode(shape, raw, rules=rules, now=NOW, key=key)
    except errors.InvalidEvent as exc:
        return "refused", exc


def assert_in_domain(shape: Shape, decoded, key) -> None:
    """What the rest of the worker relies on, checked independently of the decoder."""
    rec = decoded.record
    out = json.loads(rec.to_json())  # encodable: no lone surrogate, nothing non-finite
    for name, value in out.items():
        if isinstance(value, str):
            assert 1 <= len(value) <= 128 and value.isprintable(), name
        if isinstance(value, float):
            assert math.isfinite(value), name
    assert NOW - RULES.max_past_s <= rec.ts <= NOW + RULES.max_future_s
    if key is not UNKEYED:
        assert key == getattr(rec, shape.key_field).encode()
    for value in getattr(rec, "features", {}).values():
        assert math.isfinite(value) and abs(value) <= MAX_FEATURE_ABS


def hostile_values_here() -> st.SearchStrategy:
    return hostile_values(NOW, RULES.max_past_s, RULES.max_future_s)


@settings(max_examples=examples(400), deadline=None)
@given(shape=st.sampled_from(SHAPES), data=st.data())
def test_a_hostile_value_of_any_field_gives_one_typed_outcome(shape: Shape, data) -> None:
    doc = valid(shape)
    name = data.draw(st.sampled_from([*doc, *shape.required, "extra_field"]), label="field")
    doc[name] = data.draw(hostile_values_here(), label="value")
    key = data.draw(st.sampled_from(["own", "other", None, UNKEYED]), label="key")
    key = key_of(shape, valid(shape)) if key == "own" else b"someone-else" if key == "other" else key
    for rules in (RULES, STRICT):
        outcome, result = run(shape, encode(doc), key, rules)
        if outcome == "record":
            assert_in_domain(shape, result, key)
            assert name in shape.required or name in shape.optional or not rules.strict
        else:
            assert result.code and result.message


@settings(max_examples=examples(300), deadline=None)
@given(shape=st.sampled_from(SHAPES), raw=hostile_documents())
def test_any_bytes_on_any_topic_give_one_typed_outcome(shape: Shape, raw: bytes) -> None:
    outcome, result = run(shape, raw, b"k")
    assert outcome == "refused" or assert_in_domain(shape, result, b"k") is None


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.topic)
@pytest.mark.parametrize("ts, code", [
    (NOW + 3601, "too_far_in_future"), ("9999-12-31T23:59:59Z", "too_far_in_future"),
    ("2026-11-24T11:01:00+00:00", "too_far_in_future"), (NOW - 31 * 86400, "too_far_in_past"),
    ("1970-01-01T00:00:00Z", "too_far_in_past"), (1e12, "out_of_range"),
    ("0001-01-01T00:00:00+23:59", "too_far_in_past"),
])
def test_every_topic_refuses_times_outside_the_window_in_both_formats(shape: Shape, ts, code) -> None:
    doc = {**valid(shape), "ts": ts}
    outcome, exc = run(shape, encode(doc), key_of(shape, doc))
    assert outcome == "refused" and exc.code == code and exc.field == "ts"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.topic)
def test_a_lone_surrogate_in_any_id_is_refused_naming_the_field(shape: Shape) -> None:
    for name in [n for n in ("event_id", "user_id", "merchant_id", "item_id", "request_id", "device_id")
                 if n in valid(shape)]:
        doc = {**valid(shape), name: "u\ud800"}
        outcome, exc = run(shape, encode(doc), UNKEYED)
        assert outcome == "refused" and (exc.code, exc.field) == ("unencodable", name)


@pytest.mark.parametrize("char", ["\x00", "\x7f", "\u200b", "\u00a0", "\ue000", "\uaaf7"],
                         ids=["nul", "del", "zero-width-space", "nbsp", "private-use", "unassigned"])
def test_an_id_with_a_character_that_does_not_print_is_refused(char: str) -> None:
    # A hypothesis run found U+AAF7 (unassigned in Python 3.11's Unicode 14) accepted by a control-character check.
    doc = {**valid(TRANSACTIONS), "user_id": f"u{char}1"}
    outcome, exc = run(TRANSACTIONS, encode(doc), UNKEYED)
    assert outcome == "refused" and (exc.code, exc.field) == ("not_printable", "user_id")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.topic)
def test_the_key_must_be_the_owner_field(shape: Shape) -> None:
    doc = valid(shape)
    assert run(shape, encode(doc), key_of(shape, doc))[0] == "record"
    for key in (b"another", None, b"\xff"):
        outcome, exc = run(shape, encode(doc), key)
        assert outcome == "refused" and (exc.code, exc.field) == ("key_mismatch", shape.key_field)
        assert isinstance(exc, errors.KeyMismatch)


@pytest.mark.parametrize("features, code", [
    ({"V1": 1.7e308}, "out_of_range"), ({"V1": -1e10}, "out_of_range"), ({"V 1": 1.0}, "bad_feature_name"),
    ({"v\ud800": 1.0}, "bad_feature_name"), ({"x" * 65: 1.0}, "bad_feature_name"), ({"": 1.0}, "bad_feature_name"),
    ({f"v{i}": 1.0 for i in range(257)}, "too_many_features"), ({"V1": True}, "wrong_type"),
])
def test_features_are_bounded_in_count_name_and_magnitude(features, code) -> None:
    doc = {**valid(TRANSACTIONS), "features": features}
    outcome, exc = run(TRANSACTIONS, encode(doc), UNKEYED)
    assert outcome == "refused" and exc.code == code


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.topic)
def test_an_added_field_is_ignored_and_reported_when_lenient_refused_when_strict(shape: Shape) -> None:
    doc = {**valid(shape), "loyalty_tier": {"nested": [1, 2]}, "x\ud800": 1}
    outcome, decoded = run(shape, encode(doc), UNKEYED)
    assert outcome == "record" and decoded.ignored == ("loyalty_tier", "x\\ud800")
    assert decoded.record == run(shape, encode(valid(shape)), UNKEYED)[1].record
    outcome, exc = run(shape, encode(doc), UNKEYED, STRICT)
    assert outcome == "refused" and (exc.code, exc.field) == ("unknown_field", "loyalty_tier")


def test_an_unknown_channel_is_accepted_with_a_reason_naming_it_unless_strict() -> None:
    doc = {**valid(TRANSACTIONS), "channel": "voice"}
    outcome, decoded = run(TRANSACTIONS, encode(doc), UNKEYED)
    assert outcome == "record" and decoded.unknown_values == ("channel",) and decoded.record.channel == "voice"
    (reason,) = unknown_value_reasons(decoded.record)
    assert (reason.name, reason.kind, reason.value) == ("unknown_channel", "input", "voice")
    assert unknown_value_reasons(run(TRANSACTIONS, encode(valid(TRANSACTIONS)), UNKEYED)[1].record) == ()
    outcome, exc = run(TRANSACTIONS, encode(doc), UNKEYED, STRICT)
    assert outcome == "refused" and (exc.code, exc.field) == ("unknown_value", "channel")


def test_an_unknown_interaction_kind_is_accepted_unless_strict_and_may_carry_a_rating() -> None:
    doc = {**valid(INTERACTIONS), "kind": "wishlist"}
    outcome, decoded = run(INTERACTIONS, encode(doc), UNKEYED)
    assert outcome == "record" and decoded.unknown_values == ("kind",) and decoded.record.kind == "wishlist"
    assert run(INTERACTIONS, encode(doc), UNKEYED, STRICT)[1].code == "unknown_value"
    outcome, exc = run(INTERACTIONS, encode({**doc, "kind": "w" * 33}), UNKEYED)
    assert outcome == "refused" and exc.field == "kind"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.topic)
def test_each_input_schema_says_what_is_open_as_the_decoder_does(shape: Shape) -> None:
    schema = load_schema(SCHEMA_FILES[shape.topic])
    assert schema["additionalProperties"] is True and "ignored and counted" in schema["description"]
    assert f"must be the UTF-8 bytes of {shape.key_field}" in schema["description"]
    assert set(schema["required"]) == set(shape.required)
    assert set(schema["properties"]) == set(shape.required) | set(shape.optional)
    for name, prop in schema["properties"].items():
        if name in shape.categories:
            assert prop["examples"] == list(shape.categories[name]) and "enum" not in prop
            assert "open" in prop["description"]
        else:
            assert "examples" not in prop


def test_the_settings_check_keeps_the_windows_consistent() -> None:
    Settings.from_mapping({})  # the defaults are consistent
    with pytest.raises(SettingsError, match="decision_ttl_s"):
        Settings.from_mapping({"max_past_s": 40 * 86400})
    Settings.from_mapping({"max_past_s": 40 * 86400, "decision_ttl_s": 48 * 86400})  # + max_future_s + max_replay_s
    with pytest.raises(SettingsError, match="max_past_s .* more than 0"):
        Settings.from_mapping({"max_past_s": 0})
    with pytest.raises(SettingsError, match="allowed_lateness_s"):
        Settings.from_mapping({"max_past_s": 100, "allowed_lateness_s": 200})
    with pytest.raises(SettingsError, match="label_horizon_s"):
        Settings.from_mapping({"label_horizon_s": 8 * 86400})
    assert Settings.from_env({"STREAMSENSE_STRICT_INPUT": "true"}).strict_input is True
    assert InputRules.from_settings(Settings()).strict is False


def test_known_values_are_the_records_enumerations() -> None:
    assert TRANSACTIONS.categories == {"channel": CHANNELS} and INTERACTIONS.categories == {"kind": INTERACTION_KINDS}
    assert LABELS.categories == RECO_REQUESTS.categories == {}
    assert Transaction("e", NOW, "u", "m", 1.0, "EUR", "FR", "web").channel in CHANNELS
