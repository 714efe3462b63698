"""The transaction path for one batch: decode, load state, score, commit; a typed outcome.

Outcome per input message, exactly one of:
- a decision for fraud-decisions (new, or the stored one again when Kafka redelivers the same
  offset after a crash: same bytes, so consumers see one effective decision);
- a dead letter (invalid bytes, a duplicate event_id from another offset, the same event_id with
  another payload -- a ``conflict``, never answered with the stored decision --, a failure inside
  feature or model code for that one event). A ``score`` dead letter is stored under its input
  offset in the batch's commit, and a redelivery of that offset gets it again (``settle`` does the
  same for the dead letters of agents.batching's isolation).

Every decided event also goes to the learner unlabelled (the anomaly model learns all of them);
a label that was parked before its transaction was decided is learned once the decision is
committed (agents.label_path), and again when the transaction is redelivered (the worker may have
died before the learn example reached the broker; the learner learns a label once).

Redis unreachable: events are still scored, from empty state, flagged ``degraded``, and journaled
(agents.journal) so that a redelivery gets the same decision and Redis stores it once it answers
again. A commit whose
reply is lost (a timeout after the script ran) is read back first: if the batch's decisions are
stored, they are the answer, not a second, degraded decision.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.exceptions import RedisError

from agents.breaker import CircuitBreaker
from agents.experiment_arms import ExperimentArms
from agents.fraud_outcome import FraudOutcome, decision_emits
from agents.intake import Intake
from agents.journal import DegradedJournal
from agents.label_path import LabelPath
from agents.messages import API_SOURCE, Emit, RawMessage, Refused, Transient, refuse
from agents.metrics import Metrics
from agents.stores.fraud import CommitResult, FraudStore, LoadedState, WriteBatch
from online_models.engine import MODEL_NAME, FraudEngine
from schemas.errors import InvalidEvent
from schemas.internal_records import LabelledExample, Snapshot, StoredDecision, UnlabelledExample, event_digest
from schemas.records import DeadLetter, Transaction
from schemas.settings import Settings
from schemas.validation import TRANSACTIONS
from streams.fraud_features import apply_merchant_update

log = logging.getLogger(__name__)

MAX_COMMIT_ATTEMPTS = 3


class DuplicateEvent(InvalidEvent):
    """The event_id was already decided from another input offset."""


class ConflictingEvent(InvalidEvent):
    """The event_id was already decided for a different payload."""


class EventConflict(RuntimeError):
    """An API event whose event_id was decided for another payload (HTTP 409)."""


class ScoringFailed(RuntimeError):
    """Feature or model code failed for an API event (a Kafka event would be a ``score`` dead letter)."""


@dataclass
class TransactionStats:
    redelivered: int = 0
    degraded: int = 0
    late: int = 0
    watermark: float = float("-inf")  # the newest event time decided (the label horizon runs on it)


@dataclass
class Plan:
    """A batch decided against loaded state, before its commit."""

    outcome: FraudOutcome
    batch: WriteBatch
    early: list[LabelledExample]  # labels that came first: learned once the commit holds
    decided: list[tuple[RawMessage, str, str]]  # (message, decision, outcome) for the metrics
    records: dict[str, StoredDecision] = dataclasses.field(default_factory=dict)  # what the commit stores
    snapshots: dict[str, Snapshot] = dataclasses.field(default_factory=dict)  # of decisions awaiting a label
    again: list[str] = dataclasses.field(default_factory=list)  # decided before, with a label their commit took


class TransactionPath:
    def __init__(self, settings: Settings, engine: FraudEngine, store: FraudStore, labels: LabelPath,
                 metrics: Metrics, clock: Callable[[], float] = time.time,
                 breaker: CircuitBreaker | None = None, journal: DegradedJournal | None = None,
                 arms: ExperimentArms | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.arms = arms or ExperimentArms(settings)  # which engine decides a user in an experiment
        self.store = store
        self.labels = labels
        self.metrics = metrics
        self.clock = clock
        self.breaker = breaker or CircuitBreaker(on_change=metrics.breaker_state)
        self.stats = TransactionStats()
        self.journal = journal or DegradedJournal.for_settings(settings)
        self._state_lock = asyncio.Lock()
        self.intake = Intake(settings, metrics, clock)

    def decode(self, raw: bytes, now: float) -> Transaction:
        """A transaction from the HTTP API (no Kafka key to check)."""
        return self.intake.decode(TRANSACTIONS, raw, now=now)

    async def on_transactions(self, messages: Sequence[RawMessage]) -> FraudOutcome:
        started = self.clock()
        valid, refused = self.intake.split(TRANSACTIONS, messages, started)
        outcome = FraudOutcome(refused=refused)
        if valid:
            async with self._state_lock:
                decided, _ = await self._decide(valid, started)
            outcome.extend(decided)
        outcome.signals.extend(self.engine.take_signals())
        return outcome

    async def on_api_transactions(self, items: Sequence[tuple[bytes, Transaction, str | None]], started: float
                                  ) -> tuple[list[bytes | ScoringFailed], list[Emit], bool]:
        """Transactions from the HTTP API, already decoded by ``decode``, with distinct event_ids:
        each one's decision (the bytes that go to fraud-decisions) or ScoringFailed, everything to
        emit, and whether the decisions are durable: committed to Redis with their event_ids in the
        unpublished set, so they reach fraud-decisions even if this worker dies before the broker
        has them (False: decided degraded, without Redis)."""
        messages = [(RawMessage.from_api(tx.user_id.encode(), raw, started, index=i, client=client), tx)
                    for i, (raw, tx, client) in enumerate(items)]
        async with self._state_lock:
            outcome, durable = await self._decide(messages, started)
        outcome.signals.extend(self.engine.take_signals())
        # An API event has no offset to cite in a dead letter: its caller gets the error instead.
        failures = {refused.msg.offset: (EventConflict if refused.letter.stage == "conflict" else ScoringFailed)(
            refused.letter.error) for refused in outcome.refused}
        outcome.refused = []
        emits = outcome.to_emits(self.settings, self.metrics)
        decisions = {e.key: e.value for e in emits if e.topic == self.settings.topics.fraud_decisions}
        # A refusal first: two clients may send one event_id in one batch, and only one owns its decision.
        answers = [failures.get(i) or decisions.get(tx.event_id.encode()) or ScoringFailed("no decision")
                   for i, (_, tx, _) in enumerate(items)]
        return answers, emits, durable

    async def unpublished_decisions(self, limit: int = 1000) -> tuple[list[Emit], list[str]]:
        """HTTP decisions committed over ``api_publish_grace_s`` ago that the broker never
        acknowledged (the worker died after answering, the broker failed): their records to send
        again, and the event_ids to mark published once the broker has them."""
        stored = await self.store.unpublished(self.clock() - self.settings.api_publish_grace_s, limit)
        outcome = FraudOutcome(decisions=[s.decision for s in stored.values() if s is not None])
        if outcome.decisions:
            log.warning("publishing %d HTTP decisions again: the broker never acknowledged them",
                        len(outcome.decisions))
        return outcome.to_emits(self.settings, self.metrics), list(stored)

    async def _decide(self, valid: list[tuple[RawMessage, Transaction]], started: float
                      ) -> tuple[FraudOutcome, bool]:
        """The outcome, and whether it was committed to Redis (False: decided degraded)."""
        for _ in range(MAX_COMMIT_ATTEMPTS):
            if not self.breaker.allow():
                return self._decide_degraded(valid, started), False
            asked = time.monotonic()
            try:
                await self._reconcile()
                loaded = await self.store.load((tx.user_id for _, tx in valid),
                                               (tx.merchant_id for _, tx in valid),
                                               (tx.event_id for _, tx in valid),
                                               (m.source for m, _ in valid if not m.via_api))
            except RedisError as exc:
                self._redis_failed("load", exc)
                return self._decide_degraded(valid, started), False
            redis_s = time.monotonic() - asked
            plan = self._plan(valid, loaded, started)
            asked = time.monotonic()
            try:
                result = await self.store.commit(plan.batch)
            except RedisError as exc:
                self._redis_failed("commit", exc)
                committed = await self._read_back(plan)
                if committed is None:
                    return self._decide_degraded(valid, started), False
                if not committed:
                    continue  # another worker decided some of them: reload and redo
                result = CommitResult()  # the labels it took are read back with the others below
                plan.again.extend(plan.records)
            else:
                self._redis_answered(redis_s + time.monotonic() - asked)
            if result.fenced:
                # These partitions moved while this worker was away (paused, partitioned): their new
                # owner reads those offsets again. Their messages are dropped here; the rest is redone.
                log.warning("partitions %s have a newer owner than generation %s: %d messages not committed "
                            "here", result.fenced, valid[0][0].generation,
                            sum((m.topic, m.partition) in result.fenced for m, _ in valid))
                self.metrics.fenced.inc()
                valid = [(m, tx) for m, tx in valid if (m.topic, m.partition) not in result.fenced]
                if not valid:
                    return FraudOutcome(), True
                continue
            if result.committed:
                # Labels the commit took (parked before or while this batch was decided) are learned now.
                plan.early.extend(LabelledExample(e, plan.snapshots[e], y) for e, y in result.late_labels.items())
                plan.early.extend(await self.store.taken_labels(plan.again))
                # Only once the decisions are committed: never learned twice.
                plan.outcome.examples.extend(await self.labels.learn(plan.early))
                self.arms.decided(record.decision for record in plan.records.values())
                self._observe(plan.decided, started)
                return plan.outcome, True
            # Another writer decided some of these event_ids, or changed some of these users: redo.
            log.info("%d decisions raced with another writer, %d users changed meanwhile; reloading batch",
                     len(result.taken), len(result.stale))
        raise Transient("decision commit kept conflicting; giving up on this batch")

    async def settle(self, letters: Sequence[tuple[RawMessage, Emit]]) -> list[Emit]:
        """The one outcome of messages the isolation (agents.batching) made dead letters: the
        decision, when it was committed before the batch failed; else the dead letter, recorded by
        input offset so that a redelivery gets the same one (the first recorded stands)."""
        valid, _ = self.intake.split(TRANSACTIONS, [msg for msg, _ in letters])
        stored = await self.store.decisions([tx.event_id for _, tx in valid])
        decided = {msg.source: stored[tx.event_id] for msg, tx in valid}
        out = []
        for msg, letter in letters:
            record = decided.get(msg.source)
            if record is not None and record.source == msg.source:
                out.extend(decision_emits(self.settings, record.decision))
            elif msg.via_api:
                out.append(letter)
            else:
                out.append(dataclasses.replace(letter, value=await self.store.settle_dead_letter(msg.source,
                                                                                                  letter.value)))
        return out

    async def _reconcile(self) -> None:
        """Hand the decisions journaled while Redis was away to Redis (first call after it is back)."""
        if not self.journal.entries:
            return
        records = dict(self.journal.entries)
        for event_id in await self.store.adopt(records):
            log.error("event %s was decided degraded here and differently by another worker meanwhile; "
                      "the stored decision stands", event_id)
            self.metrics.redis_errors.labels("journal_conflict").inc()
        self.journal.forget(records)
        log.warning("stored %d decisions made without Redis", len(records))

    async def _read_back(self, plan: Plan) -> bool | None:
        """After a commit error: True when the commit ran anyway (its reply was lost), False when
        another worker decided some of these events, None when nothing is known (decide degraded)."""
        if not plan.records:
            return True  # nothing was to be decided: the batch only re-emits stored decisions
        try:
            stored = await self.store.decisions(list(plan.records))
        except RedisError:
            return None
        ours = [stored[e] is not None and stored[e].to_bytes() == record.to_bytes()
                for e, record in plan.records.items()]
        if all(ours):
            log.warning("a commit reported an error but had run: its %d decisions stand", len(ours))
            self.metrics.redis_errors.labels("commit_reply_lost").inc()
            return True
        return False if any(s is not None for s in stored.values()) else None

    def _plan(self, valid: list[tuple[RawMessage, Transaction]], loaded: LoadedState, started: float) -> Plan:
        plan = Plan(FraudOutcome(), WriteBatch(), [], [])
        outcome, batch = plan.outcome, plan.batch
        users = dict(loaded.users)
        merchants = {m: dict(h) for m, h in loaded.merchants.items()}
        decided_here: dict[str, StoredDecision] = {}
        touched_users: set[str] = set()
        unlabelled: list[UnlabelledExample] = []  # every decided event, for the anomaly model
        for msg, tx in valid:
            letter = loaded.letters.get(msg.source)
            if letter is not None:  # this offset became a dead letter before: the same one again
                outcome.refused.append(Refused(msg, DeadLetter.from_dict(json.loads(letter))))
                continue
            digest = event_digest(tx)
            stored = loaded.decisions.get(tx.event_id)
            answered = self._answered(msg, tx, digest, stored, decided_here.get(tx.event_id), outcome, plan.decided)
            if answered == "redelivered" and tx.event_id in loaded.early_labels:
                plan.again.append(tx.event_id)
            if answered:
                continue
            try:
                scored = self.arms.score(self.engine, tx, users.get(tx.user_id), merchants.get(tx.merchant_id, {}),
                                         decided_at=self.clock())
            except Exception as exc:  # noqa: BLE001 - one bad event must not ack-and-lose the batch
                log.exception("scoring failed for event %s at %s", tx.event_id, msg.source)
                refused = refuse(self.settings, msg, "score", exc, self.clock())
                outcome.refused.append(refused)
                if not msg.via_api:  # its redelivery gets this dead letter, not a decision by a newer model
                    self.store.record_dead_letter(batch, msg.source, refused.letter.to_json())
                continue
            decision = dataclasses.replace(scored.decision, latency_ms=(self.clock() - started) * 1000.0)
            users[tx.user_id] = scored.user_state
            touched_users.add(tx.user_id)
            merchants[tx.merchant_id] = apply_merchant_update(merchants.get(tx.merchant_id, {}),
                                                              scored.merchant_update)
            self.store.update_merchant(batch, tx.merchant_id, scored.merchant_update)
            record = StoredDecision(msg.source, decision, digest, msg.client)
            self.store.record_decision(batch, record, scored.snapshot)
            plan.snapshots[tx.event_id] = scored.snapshot
            if msg.via_api:
                self.store.hold_until_published(batch, tx.event_id, self.clock())
            decided_here[tx.event_id] = plan.records[tx.event_id] = record
            self.stats.late += scored.late
            self.stats.watermark = max(self.stats.watermark, tx.ts)
            outcome.decisions.append(decision)
            unlabelled.append(UnlabelledExample(tx.event_id, scored.snapshot.features))
            plan.decided.append((msg, decision.decision, "decided"))
        outcome.examples.extend(unlabelled)
        for user_id in touched_users:
            read = loaded.user_versions.get(user_id, "")
            self.store.save_user(batch, user_id, users[user_id], read)  # type: ignore[arg-type]
        for msg in {(m.topic, m.partition): m for m, _ in valid if m.generation is not None}.values():
            self.store.fence(batch, msg.topic, msg.partition, msg.generation)  # type: ignore[arg-type]
        return plan

    def _answered(self, msg: RawMessage, tx: Transaction, digest: str, stored: StoredDecision | None,
                  here: StoredDecision | None, outcome: FraudOutcome, decided: list) -> str | None:
        """How the event is answered from an earlier decision (``stored`` in Redis or the journal, or
        ``here``, earlier in this batch): ``redelivered`` (the stored decision again) or ``refused``
        (a ``conflict`` or a ``dedupe`` dead letter); None: it is not decided yet."""
        earlier = stored or here
        if earlier is None:
            return None
        if earlier.conflicts_with(digest, msg.client):
            exc = ConflictingEvent("conflicting_event_id", "event_id",
                                   f"event_id {tx.event_id!r} was already decided for a different payload or "
                                   f"another API client (from {earlier.source}); the stored decision is not "
                                   f"this sender's")
            outcome.refused.append(refuse(self.settings, msg, "conflict", exc, self.clock()))
        elif stored and (stored.source == msg.source or API_SOURCE in (stored.source, msg.source)):
            # The same offset again (a redelivery), or one event sent over both HTTP and Kafka:
            # the stored decision, byte for byte.
            outcome.decisions.append(stored.decision)
            self.stats.redelivered += 1
            decided.append((msg, stored.decision.decision, "redelivered"))
            return "redelivered"
        else:
            exc = DuplicateEvent("duplicate_event_id", "event_id",
                                 f"event_id {tx.event_id!r} was already decided (from {earlier.source})")
            outcome.refused.append(refuse(self.settings, msg, "dedupe", exc, self.clock()))
        return "refused"

    def _decide_degraded(self, valid: list[tuple[RawMessage, Transaction]], started: float) -> FraudOutcome:
        """Decided without Redis, from empty state; journaled before they are emitted."""
        outcome, decided, records = FraudOutcome(), [], {}
        for msg, tx in valid:
            digest = event_digest(tx)
            if self._answered(msg, tx, digest, self.journal.get(tx.event_id), records.get(tx.event_id), outcome,
                              decided):
                continue
            try:
                scored = self.arms.score(self.engine, tx, None, {}, decided_at=self.clock(), degraded=True)
            except Exception as exc:  # noqa: BLE001 - see _plan
                outcome.refused.append(refuse(self.settings, msg, "score", exc, self.clock()))
                continue
            decision = dataclasses.replace(scored.decision, latency_ms=(self.clock() - started) * 1000.0)
            records[tx.event_id] = StoredDecision(msg.source, decision, digest, msg.client)
            outcome.decisions.append(decision)
            decided.append((msg, decision.decision, "degraded"))
            self.stats.degraded += 1
        self.journal.record(records)
        self._observe(decided, started)
        return outcome

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
        self.metrics.model_serving(MODEL_NAME, self.engine.model_version)
