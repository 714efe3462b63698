"""The fraud processor against a real Redis (no broker needed): redelivery, duplicates, labels, outage."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from agents.batching import guarded
from agents.clients import redis_client
from agents.dev.embedded import free_port
from agents.fraud_outcome import FraudOutcome
from agents.fraud_processor import FraudProcessor
from agents.learner import Learner
from agents.messages import RawMessage, Transient
from agents.metrics import Metrics
from agents.stores.fraud import FraudStore
from agents.stores.keys import RedisKeys
from online_models.engine import FraudEngine
from schemas.internal_records import UnlabelledExample, learn_batches
from schemas.settings import SecretStr, Settings
from streams.fraud_features import UserState

pytestmark = pytest.mark.integration

NOW = 1_760_000_000.0


def tx_bytes(i: int, *, user: str = "alice", amount: float = 20.0, ts: float | None = None) -> bytes:
    return json.dumps({
        "event_id": f"e{i}", "ts": NOW - 1000 + i if ts is None else ts, "user_id": user,
        "merchant_id": f"m{i % 3}", "amount": amount, "currency": "EUR", "country": "FR", "channel": "app",
        "device_id": "d1",
    }).encode()


def msg(value: bytes, offset: int, topic: str = "transactions") -> RawMessage:
    """The message as a producer keys it: by user_id (transactions) or event_id (labels)."""
    try:
        doc = json.loads(value)
        key = str(doc["user_id"] if topic == "transactions" else doc["event_id"]).encode()
    except (ValueError, KeyError, TypeError):
        key = b"k"  # not an event: its key is never reached
    return RawMessage(topic, 0, offset, key, value, None)


@pytest.fixture
async def processor(redis_url: str):
    settings = Settings(redis_url=SecretStr(redis_url), app_id=f"ss-t-{uuid.uuid4().hex[:6]}",
                        label_horizon_s=100.0)
    redis = redis_client(Settings(redis_url=SecretStr(redis_url)))
    store = FraudStore(redis, RedisKeys.from_settings(settings), settings)
    proc = FraudProcessor(settings, FraudEngine.from_settings(settings), store, clock=lambda: NOW)
    yield proc
    await redis.aclose()


def event_ids(outcome: FraudOutcome) -> list[str]:
    return [d.event_id for d in outcome.decisions]


def stages(outcome: FraudOutcome) -> list[tuple[int, str]]:
    """(offset, stage) of each dead letter."""
    return [(r.letter.offset, r.letter.stage) for r in outcome.refused]


def learn_examples(outcome: FraudOutcome) -> list[tuple[str, bool | None, bool]]:
    """(event_id, is_fraud, observed) of the examples handed to the learner; None: unlabelled."""
    return [(e.event_id, None, True) if isinstance(e, UnlabelledExample) else (e.event_id, e.is_fraud, e.observed)
            for e in outcome.examples]


def decisions_sent(outcome: FraudOutcome, settings: Settings) -> list[bytes]:
    return [e.value for e in outcome.to_emits(settings, Metrics()) if e.topic == settings.topics.fraud_decisions]


async def test_redelivery_reemits_the_same_decision_without_counting_twice(processor) -> None:
    first = await processor.transactions.on_transactions([msg(tx_bytes(i), i) for i in range(5)])
    again = await processor.transactions.on_transactions([msg(tx_bytes(i), i) for i in range(5)])
    assert event_ids(first) == event_ids(again) == [f"e{i}" for i in range(5)]
    assert first.refused == again.refused == []
    # Byte-identical: one effective decision.
    assert decisions_sent(first, processor.settings) == decisions_sent(again, processor.settings)
    assert processor.transactions.stats.redelivered == 5
    nxt = await processor.transactions.on_transactions([msg(tx_bytes(5), 5)])
    features_seen = await processor.store.read_snapshots(["e5"])
    assert features_seen["e5"].features["user_count_24h"] == 5  # the redelivered five were counted once
    assert event_ids(nxt) == ["e5"] and nxt.refused == []


async def test_duplicate_event_id_from_another_offset_is_a_dead_letter(processor) -> None:
    outcome = await processor.transactions.on_transactions([msg(tx_bytes(1), 10), msg(tx_bytes(1), 11)])
    assert event_ids(outcome) == ["e1"] and stages(outcome) == [(11, "dedupe")]
    assert "e1" in outcome.refused[0].letter.error
    later = await processor.transactions.on_transactions([msg(tx_bytes(1), 12)])
    assert event_ids(later) == [] and stages(later) == [(12, "dedupe")]


async def test_the_same_event_id_with_another_payload_is_a_conflict_never_the_stored_decision(processor) -> None:
    first = await processor.transactions.on_transactions([msg(tx_bytes(1), 10), msg(tx_bytes(1, amount=999.0), 11)])
    assert event_ids(first) == ["e1"] and stages(first) == [(11, "conflict")]  # within one batch
    later = await processor.transactions.on_transactions([msg(tx_bytes(1, amount=1.0), 12),
                                                          msg(tx_bytes(1, user="mallory"), 13),
                                                          msg(tx_bytes(1), 10)])  # a redelivery of the first
    assert stages(later) == [(12, "conflict"), (13, "conflict")]
    assert "different payload" in later.refused[0].letter.error
    assert decisions_sent(later, processor.settings) == decisions_sent(first, processor.settings)
    # Key order, spacing and the timestamp's format do not make another payload.
    doc = json.loads(tx_bytes(1))
    reordered = json.dumps(dict(reversed(list(doc.items()))), indent=1).encode()
    same = await processor.transactions.on_transactions([msg(reordered, 14)])
    assert stages(same) == [(14, "dedupe")]


async def test_a_commit_whose_reply_is_lost_is_read_back_not_decided_again_degraded(processor) -> None:
    store, commit = processor.store, processor.store.commit

    async def ran_then_timed_out(batch):
        taken = await commit(batch)
        if not batch.guards:  # not a decision commit
            return taken
        raise RedisTimeoutError("Timeout reading from socket")  # the script ran; its reply never came

    store.commit = ran_then_timed_out
    first = await processor.transactions.on_transactions([msg(tx_bytes(i), i) for i in range(3)])
    store.commit = commit
    assert event_ids(first) == ["e0", "e1", "e2"] and not any(d.degraded for d in first.decisions)
    again = await processor.transactions.on_transactions([msg(tx_bytes(i), i) for i in range(3)])
    assert decisions_sent(again, processor.settings) == decisions_sent(first, processor.settings)
    assert processor.transactions.stats.redelivered == 3 and processor.transactions.stats.degraded == 0


def letters_sent(outcome: FraudOutcome, settings: Settings) -> list[bytes]:
    return [e.value for e in outcome.to_emits(settings, Metrics()) if e.topic == settings.topics.dead_letters]


async def test_a_dead_letter_redelivered_is_the_same_dead_letter_not_a_decision(processor) -> None:
    path, engine = processor.transactions, processor.transactions.engine
    score = engine.score

    def fails_once_for_e1(tx, *args, **kwargs):
        if tx.event_id == "e1":
            raise ValueError("model hiccup")
        return score(tx, *args, **kwargs)

    engine.score = fails_once_for_e1
    first = await path.on_transactions([msg(tx_bytes(i), i) for i in range(3)])
    engine.score = score  # the redelivery would be decided now
    again = await path.on_transactions([msg(tx_bytes(i), i) for i in range(3)])
    assert stages(first) == stages(again) == [(1, "score")] and event_ids(again) == ["e0", "e2"]
    assert letters_sent(again, processor.settings) == letters_sent(first, processor.settings)


async def test_the_isolation_settles_a_message_on_its_committed_decision_or_a_recorded_dead_letter(processor) -> None:
    path, settings = processor.transactions, processor.settings

    async def fails_after_its_commit(batch):
        await path.on_transactions(batch)
        raise ValueError("after the commit")

    (decided,) = await guarded(fails_after_its_commit, [msg(tx_bytes(1), 1)], settings, "batch",
                               settle=path.settle)
    assert decided.topic == settings.topics.fraud_decisions  # its one outcome, not a dead letter
    redelivered = await path.on_transactions([msg(tx_bytes(1), 1)])
    assert decisions_sent(redelivered, settings) == [decided.value] and redelivered.refused == []

    async def keeps_conflicting(batch):
        raise Transient("decision commit kept conflicting")

    (letter,) = await guarded(keeps_conflicting, [msg(tx_bytes(2), 2)], settings, "batch", settle=path.settle)
    assert letter.topic == settings.topics.dead_letters
    again = await path.on_transactions([msg(tx_bytes(2), 2)])
    assert again.decisions == [] and letters_sent(again, settings) == [letter.value]


async def test_malformed_input_is_dead_lettered_and_the_rest_decided(processor) -> None:
    outcome = await processor.transactions.on_transactions([msg(b"{oops", 1), msg(tx_bytes(2), 2),
                                                            msg(b'{"ts": 1}', 3)])
    assert event_ids(outcome) == ["e2"] and stages(outcome) == [(1, "validate"), (3, "validate")]


async def test_a_label_is_learned_once_from_the_snapshot(processor) -> None:
    await processor.transactions.on_transactions([msg(tx_bytes(1), 1)])
    label = json.dumps({"event_id": "e1", "is_fraud": True, "ts": NOW}).encode()
    first = await processor.labels.on_labels([msg(label, 1, "fraud-labels")])
    second = await processor.labels.on_labels([msg(label, 2, "fraud-labels")])
    assert learn_examples(first) == [("e1", True, True)] and first.refused == [] and first.decisions == []
    assert processor.labels.stats.labels_learned == 1
    assert learn_examples(second) == [] and stages(second) == [(2, "label_join")]


async def test_unlabelled_decisions_count_as_legitimate_after_the_horizon(processor) -> None:
    await processor.transactions.on_transactions([msg(tx_bytes(i, ts=NOW - 5000 + i), i) for i in range(3)])
    await processor.transactions.on_transactions([msg(tx_bytes(9, ts=NOW - 4000), 9)])  # watermark 1000 s on
    expired = await processor.expire_unlabelled()
    assert sorted(learn_examples(expired)) == [(f"e{i}", False, False) for i in range(3)]
    assert (await processor.expire_unlabelled()).examples == []


async def test_a_chargeback_after_the_horizon_is_learned_as_a_correction(processor) -> None:
    await processor.transactions.on_transactions([msg(tx_bytes(i, ts=NOW - 5000 + i), i) for i in range(3)])
    await processor.transactions.on_transactions([msg(tx_bytes(9, ts=NOW - 4000), 9)])
    assert len(learn_examples(await processor.expire_unlabelled())) == 3
    late = json.dumps({"event_id": "e1", "is_fraud": True, "ts": NOW}).encode()
    confirm = json.dumps({"event_id": "e2", "is_fraud": False, "ts": NOW}).encode()
    outcome = await processor.labels.on_labels([msg(late, 1, "fraud-labels"), msg(confirm, 2, "fraud-labels")])
    assert learn_examples(outcome) == [("e1", True, True), ("e2", False, True)]
    # The learner learns the chargeback as a correction; the confirmation teaches nothing new.
    engine = FraudEngine.from_settings(processor.settings)
    chargeback, confirmation = outcome.examples
    assert chargeback.snapshot.assumed_legitimate and confirmation.snapshot.assumed_legitimate
    engine.learn_label(chargeback.snapshot, True, event_id="e1")
    engine.learn_label(confirmation.snapshot, False, event_id="e2")
    assert (engine.classifier.n_positives, engine.classifier.n_negatives) == (1, 0)
    again = await processor.labels.on_labels([msg(late, 3, "fraud-labels")])
    assert stages(again) == [(3, "label_join")]  # each event is learned from at most once more


async def test_redis_down_still_decides_degraded(tmp_path) -> None:
    settings = Settings(redis_url=SecretStr(f"redis://127.0.0.1:{free_port()}/0"), data_dir=str(tmp_path))
    redis = Redis.from_url(settings.redis_url.get_secret_value(), socket_connect_timeout=0.5)
    store = FraudStore(redis, RedisKeys.from_settings(settings), settings)
    proc = FraudProcessor(settings, FraudEngine.from_settings(settings), store, clock=lambda: NOW)
    outcome = await proc.transactions.on_transactions([msg(tx_bytes(i), i) for i in range(3)])
    raw = tx_bytes(3)
    answers, _, durable = await proc.transactions.on_api_transactions([(raw, proc.transactions.decode(raw, NOW), None)],
                                                                      NOW)
    await redis.aclose()
    assert event_ids(outcome) == ["e0", "e1", "e2"] and all(d.degraded for d in outcome.decisions)
    assert json.loads(answers[0])["degraded"] and not durable  # no stored record: answered only after the ack


async def test_a_degraded_decision_is_journaled_answered_again_and_stored_once_redis_is_back(redis_url,
                                                                                            tmp_path) -> None:
    down = Settings(redis_url=SecretStr(f"redis://127.0.0.1:{free_port()}/0"), data_dir=str(tmp_path),
                    app_id=f"ss-j-{uuid.uuid4().hex[:6]}")
    clock = itertools.count(NOW, 0.125).__next__  # every decision made again would differ in its latency

    async def decide(settings: Settings, offsets: range) -> FraudOutcome:
        redis = Redis.from_url(settings.redis_url.get_secret_value(), socket_connect_timeout=0.5)
        store = FraudStore(redis, RedisKeys.from_settings(settings), settings)
        proc = FraudProcessor(settings, FraudEngine.from_settings(settings), store, clock=clock)
        try:
            return await proc.transactions.on_transactions([msg(tx_bytes(i), i) for i in offsets])
        finally:
            await redis.aclose()

    first = await decide(down, range(3))
    assert all(d.degraded for d in first.decisions) and list(tmp_path.glob("degraded-*.jsonl"))
    again = await decide(down, range(3))  # a redelivery while Redis is down, by a restarted worker
    assert decisions_sent(again, down) == decisions_sent(first, down)
    back = down.replace(redis_url=SecretStr(redis_url))
    after = await decide(back, range(3))  # Redis is back: the journal is stored, the redelivery answered from it
    assert decisions_sent(after, back) == decisions_sent(first, down) and not list(tmp_path.glob("degraded-*"))
    fresh = await decide(back, range(3, 4))  # Redis in use again: e3 is decided from its state
    assert event_ids(fresh) == ["e3"] and not fresh.decisions[0].degraded


async def test_a_partition_that_moves_during_an_outage_is_decided_again_and_the_conflict_is_counted(redis_url,
                                                                                                   tmp_path) -> None:
    """The documented window of the per-worker journal: the new owner of a partition has not the old
    owner's journal, so an event the old owner decided degraded (its offset not yet committed) is
    decided again; when Redis is back the first journal stored stands, the other is counted."""
    app_id, port = f"ss-j-{uuid.uuid4().hex[:6]}", free_port()
    clock = itertools.count(NOW, 0.125).__next__
    workers = []
    for name in ("old-owner", "new-owner"):
        settings = Settings(redis_url=SecretStr(f"redis://127.0.0.1:{port}/0"), data_dir=str(tmp_path / name),
                            app_id=app_id)
        redis = Redis.from_url(settings.redis_url.get_secret_value(), socket_connect_timeout=0.5)
        workers.append((FraudProcessor(settings, FraudEngine.from_settings(settings),
                                       FraudStore(redis, RedisKeys.from_settings(settings), settings), clock=clock),
                        redis))
    try:
        old, new = [(await proc.transactions.on_transactions([msg(tx_bytes(1), 1)])).decisions[0]
                    for proc, _ in workers]
        assert old.degraded and new.degraded and old.to_json() != new.to_json()  # two decisions: the window
        up = Redis.from_url(redis_url)
        for proc, _ in workers:  # Redis is back: each hands its journal over
            proc.store.redis = up
            await proc.transactions._reconcile()
        stored = await workers[0][0].store.decisions(["e1"])
        await up.aclose()
    finally:
        for _, redis in workers:
            await redis.aclose()
    assert stored["e1"].decision.to_json() == old.to_json()  # the first stored stands
    conflicts = [proc.metrics.redis_errors.labels("journal_conflict")._value.get() for proc, _ in workers]
    assert conflicts == [0, 1]


async def test_an_http_decision_the_broker_never_acknowledged_is_published_again(processor) -> None:
    path = processor.transactions
    raws = [tx_bytes(i) for i in range(3)]
    answers, emits, durable = await path.on_api_transactions([(r, path.decode(r, NOW), None) for r in raws], NOW)
    await path.on_transactions([msg(tx_bytes(9), 9)])  # the Kafka path never waits in the set
    assert durable and answers == [e.value for e in emits if e.topic == "fraud-decisions"]
    assert await path.unpublished_decisions() == ([], [])  # within the grace period
    path.clock = lambda: NOW + processor.settings.api_publish_grace_s + 1
    again, unpublished = await path.unpublished_decisions()  # the worker died before the ack
    assert unpublished == ["e0", "e1", "e2"]
    assert [(e.topic, e.key, e.value) for e in again] == [("fraud-decisions", f"e{i}".encode(), answers[i])
                                                         for i in range(3)]
    await processor.store.mark_published(unpublished)
    assert await path.unpublished_decisions() == ([], [])


async def test_a_label_before_its_transaction_is_parked_and_learned_at_decision_time(processor) -> None:
    label = json.dumps({"event_id": "e7", "is_fraud": True, "ts": NOW}).encode()
    assert await processor.labels.on_labels([msg(label, 1, "fraud-labels")]) == FraudOutcome()
    assert processor.labels.stats.labels_parked == 1 and processor.labels.stats.labels_learned == 0
    outcome = await processor.transactions.on_transactions([msg(tx_bytes(7), 7)])
    assert event_ids(outcome) == ["e7"] and outcome.refused == []
    assert learn_examples(outcome) == [("e7", None, True), ("e7", True, True)]
    assert processor.labels.stats.labels_learned == 1
    assert await processor.store.redis.zscore(processor.store.keys.pending_labels(), "e7") is None  # nor at the horizon
    again = await processor.labels.on_labels([msg(label, 2, "fraud-labels")])
    assert stages(again) == [(2, "label_join")]


async def test_a_slow_redis_opens_the_breaker_like_a_failing_one(processor) -> None:
    path = processor.transactions
    path.settings = path.settings.replace(redis_slow_call_s=0.0)  # every answer counts as slow
    for i in range(3):  # slow, but answered: decided from state, and counted against Redis
        (decision,) = (await path.on_transactions([msg(tx_bytes(i), i)])).decisions
        assert not decision.degraded
    assert path.breaker.state == "open"
    (decision,) = (await path.on_transactions([msg(tx_bytes(3), 3)])).decisions
    assert decision.degraded  # open: no waiting on Redis
    path.settings = path.settings.replace(redis_slow_call_s=10.0)
    path.breaker.reset_after_s = 0.0
    (decision,) = (await path.on_transactions([msg(tx_bytes(4), 4)])).decisions
    assert not decision.degraded and path.breaker.state == "closed"


async def test_two_writers_of_one_user_both_count_the_second_reloads_and_redoes(processor, redis_url) -> None:
    """Compare-and-set on the user blob: a writer whose read went stale reloads and redoes."""
    settings = processor.settings
    redis = redis_client(Settings(redis_url=SecretStr(redis_url)))
    other = FraudProcessor(settings, FraudEngine.from_settings(settings),
                           FraudStore(redis, RedisKeys.from_settings(settings), settings), clock=lambda: NOW)
    store, load = processor.store, processor.store.load
    raced = []

    async def load_then_someone_writes(*args):
        loaded = await load(*args)
        if not raced:  # between this read and its commit, another writer commits the same user
            raced.append(await other.transactions.on_transactions([msg(tx_bytes(100), 100)]))
        return loaded

    store.load = load_then_someone_writes
    try:
        mine = await processor.transactions.on_transactions([msg(tx_bytes(1), 1)])
    finally:
        store.load = load
        await redis.aclose()
    assert event_ids(raced[0]) == ["e100"] and event_ids(mine) == ["e1"]
    user = UserState.from_bytes(await processor.store.redis.get(processor.store.keys.user("alice")))
    assert user.count == 2  # last-writer-wins would have kept 1


async def test_a_batch_read_before_its_partition_moved_is_fenced_and_writes_nothing(processor) -> None:
    store = processor.store
    newer = FraudStore(store.redis, store.keys, processor.settings, member="other-worker")
    await newer.claim_partitions("transactions", [0], generation=5)  # the group gave partition 0 elsewhere
    zombie = [dataclasses.replace(msg(tx_bytes(i), i), generation=4) for i in range(3)]
    outcome = await processor.transactions.on_transactions(zombie)
    assert outcome.decisions == [] and outcome.refused == [] and outcome.examples == []
    assert processor.metrics.fenced._value.get() == 1
    assert await store.decisions(["e0", "e1", "e2"]) == {"e0": None, "e1": None, "e2": None}
    current = [dataclasses.replace(msg(tx_bytes(i), i), generation=5) for i in range(3)]
    assert event_ids(await processor.transactions.on_transactions(current)) == ["e0", "e1", "e2"]
    await store.claim_partitions("transactions", [0], generation=6)  # this worker, in a later rebalance
    own = await processor.transactions.on_transactions([dataclasses.replace(msg(tx_bytes(3), 3), generation=5)])
    assert event_ids(own) == ["e3"]  # a worker is never fenced by its own newer claim


def label(i: int, is_fraud: bool, offset: int) -> RawMessage:
    return msg(json.dumps({"event_id": f"e{i}", "is_fraud": is_fraud, "ts": NOW}).encode(), offset, "fraud-labels")


async def test_a_label_parked_while_its_transaction_commits_is_learned_not_orphaned(processor) -> None:
    store, commit = processor.store, processor.store.commit

    async def label_arrives_first(batch):
        if batch.guards:  # the decision's commit: its state was read before the label parked
            parked = await processor.labels.on_labels([label(1, True, 7)])
            assert parked.examples == [] and processor.labels.stats.labels_parked == 1
        return await commit(batch)

    store.commit = label_arrives_first
    try:
        outcome = await processor.transactions.on_transactions([msg(tx_bytes(1), 1)])
    finally:
        store.commit = commit
    assert learn_examples(outcome) == [("e1", None, True), ("e1", True, True)]
    assert await store.redis.zcard(store.keys.parked_labels()) == 0
    assert await store.redis.zscore(store.keys.pending_labels(), "e1") is None  # not learned again at the horizon


async def test_a_label_a_decision_commit_took_is_learned_again_when_the_transaction_is_redelivered(processor) -> None:
    """The worker dies between the commit that took a parked label and sending its learn example:
    the transaction's redelivery sends the example again (counted once), it is not lost."""
    store, commit = processor.store, processor.store.commit
    assert (await processor.labels.on_labels([label(1, True, 7)])).refused == []  # parked before

    async def label_arrives_meanwhile(batch):
        if any(late[0] == "e2" for late in batch.late):  # e2's commit: its state was read before its label parked
            await processor.labels.on_labels([label(2, False, 8)])
        return await commit(batch)

    store.commit = label_arrives_meanwhile
    try:
        for i in (1, 2):
            lost = await processor.transactions.on_transactions([msg(tx_bytes(i), i)])  # never sent: the worker died
            assert learn_examples(lost)[1:] == [(f"e{i}", i == 1, True)]
    finally:
        store.commit = commit
    again = await processor.transactions.on_transactions([msg(tx_bytes(1), 1), msg(tx_bytes(2), 2)])
    assert processor.transactions.stats.redelivered == 2
    assert learn_examples(again) == [("e1", True, True), ("e2", False, True)]
    assert await merchant_counters(processor, "m1") == {"labels": 1.0, "frauds": 1.0}
    assert await merchant_counters(processor, "m2") == {"labels": 1.0, "frauds": 0.0}
    other = await processor.labels.on_labels([label(1, False, 9)])  # the snapshot stays taken by the first
    assert stages(other) == [(9, "label_join")]


async def test_a_label_taken_by_a_commit_whose_reply_is_lost_is_learned(processor) -> None:
    store, commit = processor.store, processor.store.commit

    async def ran_then_timed_out(batch):
        await processor.labels.on_labels([label(1, True, 7)])  # parked after the batch's read
        await commit(batch)
        raise RedisTimeoutError("Timeout reading from socket")

    store.commit = ran_then_timed_out
    try:
        outcome = await processor.transactions.on_transactions([msg(tx_bytes(1), 1)])
    finally:
        store.commit = commit
    assert event_ids(outcome) == ["e1"] and not outcome.decisions[0].degraded
    assert learn_examples(outcome) == [("e1", None, True), ("e1", True, True)]


async def merchant_counters(processor, merchant_id: str) -> dict[str, float]:
    raw = await processor.store.redis.hgetall(processor.store.keys.merchant(merchant_id))
    return {k.decode(): float(v) for k, v in raw.items() if k in (b"labels", b"frauds")}


async def test_a_redelivered_label_is_joined_again_learned_and_counted_once(processor) -> None:
    await processor.transactions.on_transactions([msg(tx_bytes(1), 1)])
    first = await processor.labels.on_labels([label(1, True, 5)])
    again = await processor.labels.on_labels([label(1, True, 5)])  # the worker died before its offset was committed
    other = await processor.labels.on_labels([label(1, False, 6)])
    assert learn_examples(first) == learn_examples(again) == [("e1", True, True)]
    assert other.examples == [] and stages(other) == [(6, "label_join")]
    assert await merchant_counters(processor, "m1") == {"labels": 1.0, "frauds": 1.0}  # once, not twice
    learner = Learner(processor.settings, FraudEngine.from_settings(processor.settings), processor.metrics)
    await learner.on_examples([RawMessage("learn", 0, i, b"e1", raw) for i, (_, raw) in enumerate(
        learn_batches(first.examples + again.examples, max_bytes=100_000, max_examples=1))])
    assert learner.learned == 2 and learner.engine.classifier.n_learned == 1  # both read, the label learned once


async def test_a_label_whose_transaction_never_comes_becomes_a_label_expired_dead_letter(processor) -> None:
    now = [NOW]
    processor.labels.clock = lambda: now[0]
    raw = label(42, True, 9)
    assert (await processor.labels.on_labels([raw])).refused == []  # parked
    assert (await processor.labels.expire_parked()).refused == []  # not yet
    now[0] += processor.settings.snapshot_ttl_s + 1
    expired = await processor.labels.expire_parked()
    assert [(r.letter.stage, r.letter.offset, r.letter.source_topic) for r in expired.refused] == [
        ("label_expired", 9, "fraud-labels")]
    assert base64.b64decode(expired.refused[0].letter.raw_b64) == raw.value
    assert (await processor.labels.expire_parked()).refused == []  # once
