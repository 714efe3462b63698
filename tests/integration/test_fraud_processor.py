"""The fraud processor against a real Redis (no broker needed): redelivery, duplicates, labels, outage."""

from __future__ import annotations

import json
import uuid

import pytest
from redis.asyncio import Redis

from agents.dev.embedded import free_port
from agents.fraud_processor import FraudProcessor
from agents.messages import RawMessage
from agents.stores.fraud import FraudStore
from agents.stores.keys import RedisKeys
from online_models.engine import FraudEngine
from schemas.settings import SecretStr, Settings

pytestmark = pytest.mark.integration

NOW = 1_760_000_000.0


def tx_bytes(i: int, *, user: str = "alice", amount: float = 20.0, ts: float | None = None) -> bytes:
    return json.dumps({
        "event_id": f"e{i}", "ts": NOW - 1000 + i if ts is None else ts, "user_id": user,
        "merchant_id": f"m{i % 3}", "amount": amount, "currency": "EUR", "country": "FR", "channel": "app",
        "device_id": "d1",
    }).encode()


def msg(value: bytes, offset: int, topic: str = "transactions") -> RawMessage:
    return RawMessage(topic, 0, offset, b"k", value, None)


@pytest.fixture
async def processor(redis_url: str):
    settings = Settings(redis_url=SecretStr(redis_url), redis_key_prefix=f"ss:t:{uuid.uuid4().hex[:6]}",
                        label_horizon_s=100.0)
    redis = Redis.from_url(redis_url)
    proc = FraudProcessor(settings, FraudEngine(settings), FraudStore(redis, RedisKeys.from_settings(settings),
                                                                       settings), clock=lambda: NOW)
    yield proc
    await redis.aclose()


def outputs(emits) -> list:
    """What users see: everything but the examples on the internal learn topic."""
    return [e for e in emits if not e.topic.endswith("-learn")]


def topics_of(emits) -> list[str]:
    return [e.topic for e in outputs(emits)]


def learn_examples(emits, settings: Settings) -> list[tuple[str, bool, bool]]:
    """(event_id, is_fraud, observed) of the examples handed to the learner."""
    docs = [d for e in emits if e.topic == settings.learn_topic for d in json.loads(e.value)["b"]]
    return [(d["e"], d["y"], d["o"]) for d in docs]


async def test_redelivery_reemits_the_same_decision_without_counting_twice(processor) -> None:
    first = await processor.on_transactions([msg(tx_bytes(i), i) for i in range(5)])
    again = await processor.on_transactions([msg(tx_bytes(i), i) for i in range(5)])
    assert topics_of(first) == topics_of(again) == ["fraud-decisions"] * 5
    # Byte-identical: one effective decision.
    assert [e.value for e in outputs(first)] == [e.value for e in outputs(again)]
    assert processor.stats.redelivered == 5
    nxt = await processor.on_transactions([msg(tx_bytes(5), 5)])
    features_seen = await processor.store.read_snapshots(["e5"])
    assert features_seen["e5"]["x"]["user_count_24h"] == 5  # the redelivered five were counted once
    assert topics_of(nxt) == ["fraud-decisions"]


async def test_duplicate_event_id_from_another_offset_is_a_dead_letter(processor) -> None:
    emits = await processor.on_transactions([msg(tx_bytes(1), 10), msg(tx_bytes(1), 11)])
    assert topics_of(emits) == ["fraud-decisions", "dead-letters"]
    letter = json.loads(outputs(emits)[1].value)
    assert letter["stage"] == "dedupe" and letter["offset"] == 11 and "e1" in letter["error"]
    later = await processor.on_transactions([msg(tx_bytes(1), 12)])
    assert topics_of(later) == ["dead-letters"]


async def test_malformed_input_is_dead_lettered_and_the_rest_decided(processor) -> None:
    emits = await processor.on_transactions([msg(b"{oops", 1), msg(tx_bytes(2), 2), msg(b'{"ts": 1}', 3)])
    assert sorted(topics_of(emits)) == ["dead-letters", "dead-letters", "fraud-decisions"]


async def test_a_label_is_learned_once_from_the_snapshot(processor) -> None:
    await processor.on_transactions([msg(tx_bytes(1), 1)])
    label = json.dumps({"event_id": "e1", "is_fraud": True, "ts": NOW}).encode()
    first = await processor.on_labels([msg(label, 1, "fraud-labels")])
    second = await processor.on_labels([msg(label, 2, "fraud-labels")])
    assert learn_examples(first, processor.settings) == [("e1", True, True)] and len(first) == 1
    assert processor.stats.labels_learned == 1
    assert topics_of(second) == ["dead-letters"] and json.loads(second[0].value)["stage"] == "label_join"


async def test_unlabelled_decisions_count_as_legitimate_after_the_horizon(processor) -> None:
    await processor.on_transactions([msg(tx_bytes(i, ts=NOW - 5000 + i), i) for i in range(3)])
    await processor.on_transactions([msg(tx_bytes(9, ts=NOW - 4000), 9)])  # watermark moves 1000 s on
    expired = await processor.expire_unlabelled()
    assert sorted(learn_examples(expired, processor.settings)) == [(f"e{i}", False, False) for i in range(3)]
    assert await processor.expire_unlabelled() == []


async def test_a_chargeback_after_the_horizon_is_learned_as_a_correction(processor) -> None:
    await processor.on_transactions([msg(tx_bytes(i, ts=NOW - 5000 + i), i) for i in range(3)])
    await processor.on_transactions([msg(tx_bytes(9, ts=NOW - 4000), 9)])
    assert len(learn_examples(await processor.expire_unlabelled(), processor.settings)) == 3
    late = json.dumps({"event_id": "e1", "is_fraud": True, "ts": NOW}).encode()
    confirm = json.dumps({"event_id": "e2", "is_fraud": False, "ts": NOW}).encode()
    emits = await processor.on_labels([msg(late, 1, "fraud-labels"), msg(confirm, 2, "fraud-labels")])
    assert learn_examples(emits, processor.settings) == [("e1", True, True), ("e2", False, True)]
    # The learner learns the chargeback as a correction; the confirmation teaches nothing new.
    engine = FraudEngine(processor.settings)
    docs = [d for e in emits for d in json.loads(e.value)["b"]]
    engine.learn_label(docs[0]["s"], True, event_id="e1")
    engine.learn_label(docs[1]["s"], False, event_id="e2")
    assert (engine.classifier.n_positives, engine.classifier.n_negatives) == (1, 0)
    again = await processor.on_labels([msg(late, 3, "fraud-labels")])
    assert topics_of(again) == ["dead-letters"]  # each event is learned from at most once more


async def test_redis_down_still_decides_degraded() -> None:
    settings = Settings(redis_url=SecretStr(f"redis://127.0.0.1:{free_port()}/0"))
    redis = Redis.from_url(settings.redis_url.get_secret_value(), socket_connect_timeout=0.5)
    proc = FraudProcessor(settings, FraudEngine(settings), FraudStore(redis, RedisKeys.from_settings(settings),
                                                                      settings), clock=lambda: NOW)
    emits = await proc.on_transactions([msg(tx_bytes(i), i) for i in range(3)])
    raw = tx_bytes(3)
    answers, _, durable = await proc.on_api_transactions([(raw, proc.decode(raw, NOW))], NOW)
    await redis.aclose()
    assert topics_of(emits) == ["fraud-decisions"] * 3
    assert all(json.loads(e.value)["degraded"] for e in emits)
    assert json.loads(answers[0])["degraded"] and not durable  # no stored record: answered only after the ack


async def test_an_http_decision_the_broker_never_acknowledged_is_published_again(processor) -> None:
    raws = [tx_bytes(i) for i in range(3)]
    answers, emits, durable = await processor.on_api_transactions([(r, processor.decode(r, NOW)) for r in raws], NOW)
    await processor.on_transactions([msg(tx_bytes(9), 9)])  # the Kafka path never waits in the set
    assert durable and answers == [e.value for e in emits if e.topic == "fraud-decisions"]
    assert await processor.unpublished_decisions() == ([], [])  # within the grace period
    processor.clock = lambda: NOW + processor.settings.api_publish_grace_s + 1
    again, event_ids = await processor.unpublished_decisions()  # the worker died before the ack
    assert event_ids == ["e0", "e1", "e2"]
    assert [(e.topic, e.key, e.value) for e in again] == [("fraud-decisions", f"e{i}".encode(), answers[i])
                                                         for i in range(3)]
    await processor.store.mark_published(event_ids)
    assert await processor.unpublished_decisions() == ([], [])


async def test_a_label_before_its_transaction_is_parked_and_learned_at_decision_time(processor) -> None:
    label = json.dumps({"event_id": "e7", "is_fraud": True, "ts": NOW}).encode()
    assert await processor.on_labels([msg(label, 1, "fraud-labels")]) == []
    assert processor.stats.labels_parked == 1 and processor.stats.labels_learned == 0
    emits = await processor.on_transactions([msg(tx_bytes(7), 7)])
    assert topics_of(emits) == ["fraud-decisions"]
    assert learn_examples(emits, processor.settings) == [("e7", None, True), ("e7", True, True)]
    assert processor.stats.labels_learned == 1
    assert await processor.store.read_snapshots(["e7"]) == {"e7": None}  # nothing left waiting
    again = await processor.on_labels([msg(label, 2, "fraud-labels")])
    assert topics_of(again) == ["dead-letters"]


async def test_a_slow_redis_opens_the_breaker_like_a_failing_one(processor) -> None:
    processor.settings = processor.settings.replace(redis_slow_call_s=0.0)  # every answer counts as slow
    for i in range(3):  # slow, but answered: decided from state, and counted against Redis
        emits = await processor.on_transactions([msg(tx_bytes(i), i)])
        assert not json.loads(emits[0].value)["degraded"]
    assert processor.breaker.state == "open"
    emits = await processor.on_transactions([msg(tx_bytes(3), 3)])
    assert json.loads(emits[0].value)["degraded"]  # open: no waiting on Redis
    processor.settings = processor.settings.replace(redis_slow_call_s=10.0)
    processor.breaker.reset_after_s = 0.0
    emits = await processor.on_transactions([msg(tx_bytes(4), 4)])
    assert not json.loads(emits[0].value)["degraded"] and processor.breaker.state == "closed"
