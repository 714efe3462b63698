"""A hostile producer against a running worker (real broker, real Redis): generated hostile values of
every field, on every input topic, sent in one burst between valid events. Every message ends in
exactly one outcome: a decision or recommendation, or one dead letter at its offset; every other
message is counted by the worker as learned or parked; the worker goes on.

The expected outcome of each message comes from the decoder (``schemas.validation.decode`` with the
worker's rules); tests/unit/test_hostile_input.py checks the decoder itself against independent
invariants. Hostile event times keep an hour's margin from the window's edges, so the outcome does
not depend on when the worker reads the message."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import jsonschema
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hostile_values import encode, hostile_documents, hostile_values
from hypothesis import HealthCheck, Phase, given, settings as hypothesis_settings, strategies as st
from verifier import Ledger, verify

from agents.dev.probes import metric
from schemas.contracts import load_schema
from schemas.errors import InvalidEvent
from schemas.settings import Settings
from schemas.validation import INTERACTIONS, LABELS, RECO_REQUESTS, TRANSACTIONS, InputRules, Shape, decode

pytestmark = pytest.mark.integration
MESSAGES = 400  # generated, then sent in one burst
TOPIC_ATTR = {TRANSACTIONS: "transactions", RECO_REQUESTS: "reco_requests", LABELS: "fraud_labels",
              INTERACTIONS: "interactions"}


def baseline(shape: Shape, run: str, i: int, now: float) -> dict:
    user = f"{run}-u{i % 13}"
    return {
        TRANSACTIONS: {"event_id": f"{run}-t{i}", "ts": now - 60, "user_id": user, "merchant_id": f"m{i % 5}",
                       "amount": 20.0 + i, "currency": "EUR", "country": "FR", "channel": "web", "device_id": "d1",
                       "features": {"V1": 0.5}},
        RECO_REQUESTS: {"request_id": f"{run}-q{i}", "user_id": user, "k": 3, "ts": now - 60},
        LABELS: {"event_id": f"{run}-l{i}", "is_fraud": i % 2 == 0, "ts": now - 60},
        INTERACTIONS: {"event_id": f"{run}-i{i}", "ts": now - 60, "user_id": user, "item_id": f"item{i % 9}",
                       "kind": "view"},
    }[shape]


def hostile_message(shape: Shape, run: str, i: int, now: float, rules: InputRules) -> st.SearchStrategy:
    """(key, value): a valid event with one field (or the key) hostile, or a message that is no event."""
    doc = baseline(shape, run, i, now)
    field = st.sampled_from([*doc, *shape.required, "added_field", "key"])
    values = hostile_values(now, rules.max_past_s, rules.max_future_s)
    own_key = str(doc[shape.key_field]).encode()
    keys = st.sampled_from([None, b"someone-else", own_key + b"x"])

    def mutate(name, value, key):
        if name == "key":
            return key, encode(doc)
        return own_key, encode({**doc, name: value})

    kinds = {"field": st.builds(mutate, field, values, keys), "document": st.builds(lambda raw: (own_key, raw),
             hostile_documents()), "valid": st.just((own_key, encode(doc)))}
    # Valid events between the hostile ones: their exactly-one outcome is checked too.
    return st.sampled_from(["valid"] * 5 + ["field"] * 4 + ["document"]).flatmap(kinds.__getitem__)


async def send(settings: Settings, messages: list[tuple[Shape, bytes | None, bytes]]) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", max_request_size=1 << 20)
    await producer.start()
    try:
        futures = [await producer.send(getattr(settings.topics, TOPIC_ATTR[shape]), value, key=key)
                   for shape, key, value in messages]
        return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


async def read_outputs(settings: Settings, expected: int, timeout: float = 180.0) -> dict[str, list[dict]]:
    """Decisions, recommendations and dead letters until ``expected`` of them came and 5 s passed quietly."""
    t = settings.topics
    names = {t.fraud_decisions: "decisions", t.recommendations: "recommendations", t.dead_letters: "dead"}
    consumer = AIOKafkaConsumer(*names, bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    out: dict[str, list[dict]] = {name: [] for name in names.values()}
    await consumer.start()
    try:
        deadline, quiet_since = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                out[names[tp.topic]].extend(json.loads(r.value) for r in records)
            if batch:
                quiet_since = time.monotonic()
            if sum(map(len, out.values())) >= expected and time.monotonic() - quiet_since > 5:
                break
    finally:
        await consumer.stop()
    return out


def message_id(record) -> str | None:
    return None if record is None else getattr(record, "event_id", None) or record.request_id


def wait_for_counts(settings: Settings, expected: dict[Shape, int], timeout: float = 30.0) -> dict[Shape, float]:
    """The worker's count of labels and interactions it took (parked, learned, or of an unknown kind),
    once it reaches ``expected`` or ``timeout`` passes."""
    def counts() -> dict[Shape, float]:
        return {shape: metric(settings.web_port, "streamsense_events_total",
                              where=lambda labels: labels["outcome"] != "dead_letter",
                              topic=getattr(settings.topics, TOPIC_ATTR[shape])) for shape in expected}
    deadline = time.monotonic() + timeout
    while (now := counts()) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return now


def expected_valid(shape: Shape, key: bytes | None, raw: bytes, rules: InputRules, now: float):
    try:
        return decode(shape, raw, rules=rules, now=now, key=key).record
    except InvalidEvent:
        return None


def generate(run: str, now: float, rules: InputRules, count: int) -> list[tuple[Shape, bytes | None, bytes]]:
    """``count`` messages, each one Hypothesis example (about half transactions), in the order generated."""
    out: list[tuple[Shape, bytes | None, bytes]] = []

    @hypothesis_settings(max_examples=count, phases=[Phase.generate], deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(shape=st.sampled_from([TRANSACTIONS] * 3 + [RECO_REQUESTS, LABELS, INTERACTIONS]), data=st.data())
    def one(shape: Shape, data) -> None:
        out.append((shape, *data.draw(hostile_message(shape, run, len(out), now, rules))))

    one()
    return out


def test_hostile_values_of_every_field_end_in_exactly_one_outcome(settings: Settings, worker) -> None:
    run, now, rules = uuid.uuid4().hex[:6], time.time(), InputRules.from_settings(settings)
    messages, valid, ids = [], [], set()
    for shape, key, raw in generate(run, now, rules, MESSAGES):
        rec = expected_valid(shape, key, raw, rules, now)
        if rec is not None and (shape, message_id(rec)) in ids:  # a hostile id equal to another (say "0"):
            key, raw, rec = None, b"{}", None  # a duplicate is another story (dedupe): send plain garbage instead
        ids.add((shape, message_id(rec)))
        messages.append((shape, key, raw))
        valid.append(rec)
    offsets = asyncio.run(send(settings, messages))
    expected_outputs = sum(1 for (shape, _, _), rec in zip(messages, valid, strict=True)
                           if rec is None or shape in (TRANSACTIONS, RECO_REQUESTS))
    out = asyncio.run(read_outputs(settings, expected_outputs))
    taken = {shape: sum(s is shape and rec is not None for (s, _, _), rec in zip(messages, valid, strict=True))
             for shape in (LABELS, INTERACTIONS)}
    learned = wait_for_counts(settings, taken)
    assert worker.alive()

    dead = {(d["source_topic"], d["partition"], d["offset"]): d for d in out["dead"]}
    ledger = Ledger()
    for (shape, _, raw), rec, (partition, offset) in zip(messages, valid, offsets, strict=True):
        at = (getattr(settings.topics, TOPIC_ATTR[shape]), partition, offset)
        if rec is None:
            assert at in dead, f"{shape.topic} message at {at} was refused by the decoder but not dead-lettered"
            ledger.add_malformed(raw)
            continue
        assert at not in dead, f"valid {shape.topic} message at {at} dead-lettered: {dead[at]['error']}"
        if shape is TRANSACTIONS:
            ledger.add_valid({"event_id": rec.event_id, "user_id": rec.user_id})
    report = verify(ledger, out["decisions"], out["dead"])
    assert report.missing == [] and report.effective_duplicates == [] and report.order_violations == 0
    assert {d["event_id"] for d in out["decisions"]} == set(ledger.valid)  # no refused event was decided
    assert len(dead) == sum(rec is None for rec in valid)  # one dead letter per refused message, no more
    assert {d["stage"] for d in dead.values()} <= {"validate"}
    answered = {r["request_id"] for r in out["recommendations"]}
    assert answered == {rec.request_id for (shape, _, _), rec in zip(messages, valid, strict=True)
                        if shape is RECO_REQUESTS and rec is not None}
    assert learned == taken  # labels and interactions have no output topic: the worker's count of what it took
    for decision in out["decisions"]:
        jsonschema.validate(decision, load_schema("fraud_decision.schema.json"))
    print(f"{len(messages)} hostile messages: {len(ledger.valid)} transactions decided, {len(answered)} requests "
          f"answered, {sum(learned.values()):.0f} labels/interactions taken, {len(dead)} dead letters "
          f"({sorted({d['error_code'] for d in dead.values()})})")
