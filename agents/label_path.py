"""The label path: chargebacks and confirmations joined to their decision-time snapshots.

Outcome per label, exactly one of:
- a labelled example for the learner (agents.learner), from the snapshot taken at decision time;
- parked, when its transaction is not decided yet (a backlog, a replay): the transaction path
  learns it as soon as the decision is committed (joining and parking is one Redis script, and
  the decision commit takes parked labels in its own script: a label parked while its
  transaction is being committed is never orphaned; the commit keeps it, so the transaction's
  redelivery learns it again if the worker died before its example was sent). A label still parked ``snapshot_ttl_s``
  later, its transaction never decided, becomes a ``label_expired`` dead letter (``expire_parked``);
- a ``label_join`` dead letter (invalid bytes go to ``validate``) when its decision is known but
  its snapshot is gone (taken by another label, or past the snapshot TTL), or another label for
  the event is already parked.

A snapshot is taken for the label's input offset, not deleted: the same label redelivered (the
worker died before its offset was committed) is joined again instead of lost. Learning it is
idempotent: the learner's model learns a label once per event (online_models.labels_learned), and
its effect on the merchant's counters is applied once (``FraudStore.apply_merchant_updates``).

Decisions left unlabelled ``label_horizon_s`` of event time after their transaction are learned
as legitimate (``expire_unlabelled``); a chargeback that comes later is learned as a correction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agents.experiment_arms import ExperimentArms
from agents.fraud_outcome import FraudOutcome
from agents.intake import Intake
from agents.messages import RawMessage, refuse
from agents.metrics import Metrics
from agents.stores.fraud import FraudStore, ParkedLabel
from online_models.engine import MODEL_NAME, FraudEngine
from schemas.errors import InvalidEvent
from schemas.internal_records import LabelledExample, Snapshot
from schemas.settings import Settings
from schemas.validation import LABELS

log = logging.getLogger(__name__)


class UnknownLabelTarget(InvalidEvent):
    """A label for a decided event_id whose snapshot is gone (already labelled, or expired)."""


class LabelExpired(InvalidEvent):
    """A label whose transaction was never decided while it waited."""


@dataclass
class LabelStats:
    labels_learned: int = 0
    labels_parked: int = 0
    expired_learned: int = 0


class LabelPath:
    def __init__(self, settings: Settings, engine: FraudEngine, store: FraudStore, metrics: Metrics,
                 clock: Callable[[], float] = time.time, arms: ExperimentArms | None = None) -> None:
        self.settings = settings
        self.arms = arms or ExperimentArms(settings)  # labels of decisions made in an experiment count per arm
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.stats = LabelStats()
        self.intake = Intake(settings, metrics, clock)

    async def on_labels(self, messages: Sequence[RawMessage]) -> FraudOutcome:
        labels, refused = self.intake.split(LABELS, messages)
        outcome = FraudOutcome(refused=refused)
        joined = await self.store.join_labels(
            [(label.event_id, msg.source, ParkedLabel(label.is_fraud, msg.source, msg.value or b""))
             for msg, label in labels], self.clock())
        learn, parked = [], 0
        for (msg, label), found in zip(labels, joined, strict=True):
            if found.kind == "learn":
                learn.append(LabelledExample(label.event_id, found.snapshot, label.is_fraud))
            elif found.kind == "parked" and found.by in ("", msg.source):  # parked now, or this label again
                parked += 1
            else:
                why = (f"another label ({found.by}) for event_id {label.event_id!r} is already waiting for it"
                       if found.kind == "parked" else
                       f"no decision waiting for a label for event_id {label.event_id!r} (already labelled"
                       f"{' by ' + found.by if found.by else ''}, or past the snapshot TTL)")
                outcome.refused.append(refuse(self.settings, msg, "label_join",
                                              UnknownLabelTarget("unknown_event", "event_id", why), self.clock()))
        self.stats.labels_parked += parked
        self.metrics.events.labels(self.settings.topics.fraud_labels, "parked").inc(parked)
        self.metrics.events.labels(self.settings.topics.fraud_labels, "learned").inc(len(learn))
        outcome.examples.extend(await self.learn(learn, {label.event_id: label.ts for _, label in labels}))
        outcome.signals.extend(self.engine.take_signals())
        return outcome

    async def learn(self, examples: Sequence[LabelledExample],
                    label_ts: Mapping[str, float] | None = None) -> list[LabelledExample]:
        """Apply what the labels change in the merchants' counters and hand the examples on to the
        learner (one worker learns for all, see agents.learner)."""
        updates = []
        for example in examples:
            snapshot = example.snapshot
            updates.append((example.event_id, example.observed, snapshot.merchant,
                            self.engine.label_effect(snapshot, example.is_fraud)))
            if example.observed:
                delay = (label_ts or {}).get(example.event_id, snapshot.ts) - snapshot.ts
                self.metrics.labelled(MODEL_NAME, example.is_fraud, snapshot.score, delay)
                self.stats.labels_learned += 1
            self.arms.labelled(snapshot, example.is_fraud)  # an assumed label too: the decision's outcome
        await self.store.apply_merchant_updates(updates)
        return list(examples)

    async def expire_unlabelled(self, watermark: float, limit: int = 1000) -> FraudOutcome:
        """Send every decision unlabelled for ``label_horizon_s`` of event time before ``watermark``
        (the newest transaction time decided) to be learned as legitimate."""
        if watermark == float("-inf"):
            return FraudOutcome()
        event_ids = await self.store.expired_pending(watermark - self.settings.label_horizon_s, limit)
        # ZREM claims each id: with several workers expiring, only one sends a given event.
        snapshots: dict[str, Snapshot] = {e: s for e, s in (await self.store.claim_expired(event_ids)).items()
                                          if s is not None}
        examples = await self.learn([LabelledExample(e, s, False, observed=False) for e, s in snapshots.items()])
        self.metrics.labels.labels("horizon").inc(len(snapshots))
        await self.store.mark_assumed_legitimate(list(snapshots), snapshots)
        self.stats.expired_learned += len(snapshots)
        return FraudOutcome(examples=examples)

    async def expire_parked(self, limit: int = 1000) -> FraudOutcome:
        """Labels parked ``snapshot_ttl_s`` ago whose transaction never came: ``label_expired`` dead
        letters, with the label's own bytes and input offset."""
        outcome = FraudOutcome()
        ttl = self.settings.snapshot_ttl_s
        for event_id, parked in (await self.store.expired_parked(self.clock() - ttl, limit)).items():
            topic, partition, offset = parked.source.rsplit("/", 2) if parked.source.count("/") >= 2 else ("", -1, -1)
            msg = RawMessage(topic or self.settings.topics.fraud_labels, int(partition), int(offset),
                             event_id.encode(), parked.raw)
            exc = LabelExpired("label_expired", "event_id",
                               f"no transaction {event_id!r} was decided within {ttl} s of its label")
            outcome.refused.append(refuse(self.settings, msg, "label_expired", exc, self.clock()))
        return outcome
