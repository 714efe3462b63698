"""The fraud path for one batch of raw Kafka messages: decode, load state, score, commit, emit.

Outcome per input message, exactly one of:
- a decision on fraud-decisions (new, or the stored one re-emitted when Kafka redelivers the
  same offset after a crash: same bytes, so consumers see one effective decision);
- a dead letter (invalid bytes, a duplicate event_id from another offset, a failure inside
  feature or model code for that one event).

Labels: learned from the decision-time snapshot; a label that comes before its transaction is
decided (a backlog, a replay) is parked and learned when the decision is committed.

Redis unreachable: events are still scored, from empty state, flagged ``degraded``.

The HTTP API (``on_api_transactions``) goes through the same code. An event_id that arrives both
ways is decided once: whichever comes second gets the stored decision. Batches and API events
take turns (one lock), so two of them never read and write the same user's state at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agents.stores.fraud import FraudStore, LoadedState, WriteBatch
from agents.breaker import CircuitBreaker
from agents.messages import API_SOURCE, Emit, RawMessage, dead_letter
from agents.metrics import Metrics
from agents.stores.keys import RedisKeys
from online_models.engine import MODEL_NAME, FraudEngine
from schemas import internal_json
from schemas.errors import InvalidEvent
from schemas.records import Transaction
from schemas.settings import Settings
from schemas.validation import decode_label, decode_transaction
from streams.fraud_features import apply_merchant_update

log = logging.getLogger(__name__)

MAX_COMMIT_ATTEMPTS = 3


LEARN_CHUNK = 100  # examples per message on the learn topic: well under Kafka's 1 MB default


def learn_example(event_id: str, snapshot: dict, is_fraud: bool | None, observed: bool = True) -> dict:
    """A decision-time snapshot for the learner: labelled, or ``is_fraud=None`` at decision time
    for the anomaly model, which learns every event."""
    return {"e": event_id, "y": is_fraud, "o": observed, "s": snapshot}


def learn_messages(settings: Settings, examples: Sequence[dict]) -> list[Emit]:
    """Examples for the learner (internal topic, one partition), many to a message: one Kafka
    message per event cost the learner Faust's per-message overhead on every decision."""
    return [Emit(settings.learn_topic, examples[i]["e"].encode(),
                 internal_json.dumps({"b": examples[i:i + LEARN_CHUNK]}))
            for i in range(0, len(examples), LEARN_CHUNK)]


class DuplicateEvent(InvalidEvent):
    """The event_id was already decided from another input offset."""


class ScoringFailed(RuntimeError):
    """Feature or model code failed for an API event (a Kafka event would be a ``score`` dead letter)."""


class UnknownLabelTarget(InvalidEvent):
    """A label for a decided event_id whose snapshot is gone (already labelled, or expired)."""


@dataclass
class FraudStats:
    decisions: int = 0
    redelivered: int = 0
    dead_letters: int = 0
    degraded: int = 0
    late: int = 0
    labels_learned: int = 0
    labels_parked: int = 0
    expired_learned: int = 0
    watermark: float = float("-inf")


class FraudProcessor:
    def __init__(self, settings: Settings, engine: FraudEngine, store: FraudStore,
                 clock: Callable[[], float] = time.time, metrics: Metrics | None = None,
                 breaker: CircuitBreaker | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.clock = clock
        self.stats = FraudStats()
        self.metrics = metrics or Metrics()
        self.breaker = breaker or CircuitBreaker(on_change=self.metrics.breaker_state)
        self._state_lock = asyncio.Lock()

    @classmethod
    def on_redis(cls, redis: Redis, settings: Settings, engine: FraudEngine | None = None,
                 metrics: Metrics | None = None) -> "FraudProcessor":
        """The processor over ``redis`` with the settings' key layout; a fresh engine unless given."""
        return cls(settings, engine or FraudEngine(settings),
                   FraudStore(redis, RedisKeys.from_settings(settings), settings), metrics=metrics)

    # -- transactions --------------------------------------------------------------------------
    def decode(self, raw: bytes, now: float) -> Transaction:
        s = self.settings
        return decode_transaction(raw, max_bytes=s.max_event_bytes, now=now, max_future_s=s.max_future_s,
                                  max_past_s=s.max_past_s)

    async def on_transactions(self, messages: Sequence[RawMessage]) -> list[Emit]:
        started = self.clock()
        emits: list[Emit] = []
        valid: list[tuple[RawMessage, Transaction]] = []
        for msg in messages:
            try:
                tx = self.decode(msg.value or b"", started)
            except InvalidEvent as exc:
                emits.append(self._dead_letter(msg, "validate", exc))
                continue
            valid.append((msg, tx))
        if valid:
            async with self._state_lock:
                decided, _ = await self._decide(valid, started)
            emits.extend(decided)
        emits.extend(self._drift_emits())
        self._count(emits)
        return emits

    async def on_api_transactions(self, items: Sequence[tuple[bytes, Transaction]], started: float
                                  ) -> tuple[list[bytes | ScoringFailed], list[Emit], bool]:
        """Transactions from the HTTP API, already decoded by ``decode``, with distinct event_ids:
        each one's decision (the bytes that go to fraud-decisions) or ScoringFailed, everything to
        emit, and whether the decisions are durable: committed to Redis with their event_ids in the
        unpublished set, so they reach fraud-decisions even if this worker dies before the broker
        has them (False: decided degraded, without Redis)."""
        messages = [(RawMessage.from_api(tx.user_id.encode(), raw, started, index=i), tx)
                    for i, (raw, tx) in enumerate(items)]
        async with self._state_lock:
            emits, durable = await self._decide(messages, started)
        topics = self.settings.topics
        decisions = {e.key: e.value for e in emits if e.topic == topics.fraud_decisions}
        # A dead letter here is a scoring failure; an API event has no offset to cite, so the
        # caller gets the error instead.
        failures = {letter["offset"]: ScoringFailed(letter["error"]) for letter in
                    (json.loads(e.value) for e in emits if e.topic == topics.dead_letters)}
        answers = [decisions.get(tx.event_id.encode()) or failures.get(i) or ScoringFailed("no decision")
                   for i, (_, tx) in enumerate(items)]
        emits = [e for e in emits if e.topic != topics.dead_letters] + self._drift_emits()
        self._count(emits)
        return answers, emits, durable

    async def unpublished_decisions(self, limit: int = 1000) -> tuple[list[Emit], list[str]]:
        """HTTP decisions committed over ``api_publish_grace_s`` ago that the broker never
        acknowledged (the worker died after answering, the broker failed): their records to send
        again, and the event_ids to mark published once the broker has them."""
        stored = await self.store.unpublished(self.clock() - self.settings.api_publish_grace_s, limit)
        emits = [Emit(self.settings.topics.fraud_decisions, event_id.encode(), decision.record())
                 for event_id, decision in stored.items() if decision is not None]
        if emits:
            log.warning("publishing %d HTTP decisions again: the broker never acknowledged them", len(emits))
        return emits, list(stored)

    async def _decide(self, valid: list[tuple[RawMessage, Transaction]], started: float
                      ) -> tuple[list[Emit], bool]:
        """Everything to emit, and whether it was committed to Redis (False: decided degraded)."""
        for _ in range(MAX_COMMIT_ATTEMPTS):
            if not self.breaker.allow():
                return self._decide_degraded(valid, started), False
            asked = time.monotonic()
            try:
                loaded = await self.store.load((tx.user_id for _, tx in valid),
                                               (tx.merchant_id for _, tx in valid),
                                               (tx.event_id for _, tx in valid))
            except RedisError as exc:
                self._redis_failed("load", exc)
                return self._decide_degraded(valid, started), False
            redis_s = time.monotonic() - asked
            emits, batch, early, decided = self._plan(valid, loaded, started)
            asked = time.monotonic()
            try:
                taken = await self.store.commit(batch)
            except RedisError as exc:
                self._redis_failed("commit", exc)
                return self._decide_degraded(valid, started), False
            self._redis_answered(redis_s + time.monotonic() - asked)
            if not taken:
                emits.extend(await self._learn(early))  # only once the decisions are committed: never twice
                self._observe(decided, started)
                return emits, True
            # Another worker decided some of these event_ids meanwhile: reload and redo.
            log.info("%d decisions raced with another worker; reloading batch", len(taken))
        raise RuntimeError("decision commit kept conflicting; giving up on this batch")

    def _plan(self, valid: list[tuple[RawMessage, Transaction]], loaded: LoadedState, started: float
              ) -> tuple[list[Emit], WriteBatch, list[tuple[str, dict, bool]], list[tuple[RawMessage, str, str]]]:
        topics = self.settings.topics
        emits: list[Emit] = []
        batch = WriteBatch()
        users = dict(loaded.users)
        merchants = {m: dict(h) for m, h in loaded.merchants.items()}
        decided_here: dict[str, str] = {}
        touched_users: set[str] = set()
        early: list[tuple[str, dict, bool]] = []  # labels that came first: learned after the commit
        decided: list[tuple[RawMessage, str, str]] = []  # (message, decision, outcome) for the metrics
        unlabelled: list[dict] = []  # every decided event, for the anomaly model
        for msg, tx in valid:
            stored = loaded.decisions.get(tx.event_id)
            first_source = stored.source if stored else decided_here.get(tx.event_id)
            # The same offset again (a redelivery), or one event sent over both HTTP and Kafka:
            # the stored decision, byte for byte.
            if stored and (stored.source == msg.source or API_SOURCE in (stored.source, msg.source)):
                emits.append(Emit(topics.fraud_decisions, tx.event_id.encode(), stored.record()))
                self.stats.redelivered += 1
                decided.append((msg, stored.decision["decision"], "redelivered"))
                continue
            if first_source:
                exc = DuplicateEvent("duplicate_event_id", "event_id",
                                     f"event_id {tx.event_id!r} was already decided (from {first_source})")
                emits.append(self._dead_letter(msg, "dedupe", exc))
                continue
            try:
                scored = self.engine.score(tx, users.get(tx.user_id), merchants.get(tx.merchant_id, {}),
                                           decided_at=self.clock())
            except Exception as exc:  # noqa: BLE001 - one bad event must not ack-and-lose the batch
                log.exception("scoring failed for event %s at %s", tx.event_id, msg.source)
                emits.append(self._dead_letter(msg, "score", exc))
                continue
            decision = dataclasses.replace(scored.decision, latency_ms=(self.clock() - started) * 1000.0)
            users[tx.user_id] = scored.user_state
            touched_users.add(tx.user_id)
            merchants[tx.merchant_id] = apply_merchant_update(merchants.get(tx.merchant_id, {}),
                                                              scored.merchant_update)
            self.store.update_merchant(batch, tx.merchant_id, scored.merchant_update)
            label = loaded.early_labels.get(tx.event_id)
            if label is not None:
                early.append((tx.event_id, scored.snapshot, label))
            self.store.record_decision(batch, tx.event_id, msg.source, decision.to_dict(),
                                       None if label is not None else scored.snapshot, tx.ts)
            if msg.via_api:
                self.store.hold_until_published(batch, tx.event_id, self.clock())
            decided_here[tx.event_id] = msg.source
            self.stats.late += scored.late
            self.stats.watermark = max(self.stats.watermark, tx.ts)
            emits.append(Emit(topics.fraud_decisions, tx.event_id.encode(), decision.to_json()))
            unlabelled.append(learn_example(tx.event_id, {"x": scored.snapshot["x"]}, None))
            decided.append((msg, decision.decision, "decided"))
        emits.extend(learn_messages(self.settings, unlabelled))
        for user_id in touched_users:
            self.store.save_user(batch, user_id, users[user_id])  # type: ignore[arg-type]
        return emits, batch, early, decided

    def _decide_degraded(self, valid: list[tuple[RawMessage, Transaction]], started: float) -> list[Emit]:
        emits, decided = [], []
        for msg, tx in valid:
            try:
                scored = self.engine.score(tx, None, {}, decided_at=self.clock(), degraded=True)
            except Exception as exc:  # noqa: BLE001 - see _plan
                emits.append(self._dead_letter(msg, "score", exc))
                continue
            decision = dataclasses.replace(scored.decision, latency_ms=(self.clock() - started) * 1000.0)
            emits.append(Emit(self.settings.topics.fraud_decisions, tx.event_id.encode(), decision.to_json()))
            decided.append((msg, decision.decision, "degraded"))
            self.stats.degraded += 1
        self._observe(decided, started)
        return emits

    def _redis_answered(self, seconds: float) -> None:
        """A slow answer is a failure for the breaker (the batch keeps its result): while the
        breaker is open, decisions stop waiting on Redis."""
        if seconds <= self.settings.redis_slow_call_s:
            self.breaker.success()
            return
        log.warning("redis took %.0f ms for one batch (breaker %s)", seconds * 1000, self.breaker.state)
        self.metrics.redis_errors.labels("slow").inc()
        self.breaker.failure()

    def _redis_failed(self, operation: str, exc: Exception) -> None:
        log.warning("redis %s failed (breaker %s); deciding degraded: %s", operation, self.breaker.state, exc)
        self.metrics.redis_errors.labels(operation).inc()
        self.breaker.failure()

    def _observe(self, decided: Sequence[tuple[RawMessage, str, str]], started: float) -> None:
        now = self.clock()
        for msg, decision, outcome in decided:
            self.metrics.events.labels(msg.topic, outcome).inc()
            if outcome != "redelivered":
                self.metrics.decisions.labels(decision).inc()
            if msg.timestamp:
                self.metrics.end_to_end.labels("fraud").observe(max(now - msg.timestamp, 0.0))
            self.metrics.processing.labels("fraud").observe(max(now - started, 0.0))
        self.metrics.model_version.labels(MODEL_NAME).set(self.engine.classifier.n_learned)

    def _drift_emits(self) -> list[Emit]:
        emits = []
        for signal in self.engine.take_signals():
            self.metrics.drift.labels(signal.target, signal.detector, signal.severity).inc()
            log.warning("drift: %s %s (%s, %s)", signal.target, signal.name, signal.detector, signal.severity)
            emits.append(Emit(self.settings.topics.drift_signals, f"{signal.target}/{signal.name}".encode(),
                              signal.to_json()))
        return emits

    # -- labels --------------------------------------------------------------------------------
    async def on_labels(self, messages: Sequence[RawMessage]) -> list[Emit]:
        emits: list[Emit] = []
        labels = []
        for msg in messages:
            try:
                labels.append((msg, decode_label(msg.value or b"", max_bytes=self.settings.max_event_bytes)))
            except InvalidEvent as exc:
                emits.append(self._dead_letter(msg, "validate", exc))
        snapshots, decided = await self.store.take_snapshots(list(dict.fromkeys(lb.event_id for _, lb in labels)))
        learn, park = [], {}
        for msg, label in labels:
            snapshot = snapshots.pop(label.event_id, None)
            if snapshot is not None:
                learn.append((label.event_id, snapshot, label.is_fraud))
            elif label.event_id not in decided and label.event_id not in park:
                park[label.event_id] = label.is_fraud  # its transaction is not decided yet
            else:
                exc = UnknownLabelTarget("unknown_event", "event_id",
                                         f"no decision waiting for a label for event_id {label.event_id!r} "
                                         "(already labelled, or past the snapshot TTL)")
                emits.append(self._dead_letter(msg, "label_join", exc))
        await self.store.park_labels(park)
        self.stats.labels_parked += len(park)
        self.metrics.events.labels(self.settings.topics.fraud_labels, "parked").inc(len(park))
        self.metrics.events.labels(self.settings.topics.fraud_labels, "learned").inc(len(learn))
        emits.extend(await self._learn(learn, {label.event_id: label.ts for _, label in labels}))
        emits.extend(self._drift_emits())
        self._count(emits)
        return emits

    async def _learn(self, labelled: Sequence[tuple[str, dict, bool]], label_ts: dict | None = None,
                     observed: bool = True) -> list[Emit]:
        """Hand labelled snapshots to the learner (one worker learns for all, see agents.learner) and
        apply what the labels change in the merchants' counters."""
        updates, examples = [], []
        for event_id, snapshot, is_fraud in labelled:
            updates.append((snapshot["m"], self.engine.label_effect(snapshot, is_fraud)))
            examples.append(learn_example(event_id, snapshot, is_fraud, observed))
            if observed:
                delay = (label_ts or {}).get(event_id, snapshot["ts"]) - snapshot["ts"]
                self.metrics.labelled(MODEL_NAME, is_fraud, snapshot.get("p", 0.5), delay)
        await self.store.apply_merchant_updates(updates)
        self.stats.labels_learned += len(updates) if observed else 0
        return learn_messages(self.settings, examples)

    async def expire_unlabelled(self, limit: int = 1000) -> list[Emit]:
        """Send every decision unlabelled for ``label_horizon_s`` of event time to be learned as legitimate."""
        if self.stats.watermark == float("-inf"):
            return []
        event_ids = await self.store.expired_pending(self.stats.watermark - self.settings.label_horizon_s, limit)
        # ZREM claims each id: with several workers expiring, only one sends a given event.
        snapshots = {e: s for e, s in (await self.store.claim_expired(event_ids)).items() if s is not None}
        emits = await self._learn([(e, s, False) for e, s in snapshots.items()], observed=False)
        self.metrics.labels.labels("horizon").inc(len(snapshots))
        await self.store.mark_assumed_legitimate(list(snapshots), snapshots)
        self.stats.expired_learned += len(snapshots)
        return emits

    # -- helpers -------------------------------------------------------------------------------
    def _dead_letter(self, msg: RawMessage, stage: str, exc: Exception) -> Emit:
        return dead_letter(self.settings, msg, stage, exc, self.clock())

    def _count(self, emits: Sequence[Emit]) -> None:
        topics = self.settings.topics
        for emit in emits:
            if emit.topic == topics.dead_letters:
                self.stats.dead_letters += 1
                letter = json.loads(emit.value)  # rare: parsing it here keeps retries from double counting
                self.metrics.dead_letters.labels(letter["stage"]).inc()
                self.metrics.events.labels(letter["source_topic"], "dead_letter").inc()
            elif emit.topic == topics.fraud_decisions:
                self.stats.decisions += 1
