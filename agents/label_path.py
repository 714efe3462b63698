"""The label path: chargebacks and confirmations joined to their decision-time snapshots.

Outcome per label, exactly one of:
- a labelled example for the learner (agents.learner), from the snapshot taken at decision time;
- parked, when its transaction is not decided yet (a backlog, a replay): the transaction path
  learns it as soon as the decision is committed;
- a ``label_join`` dead letter (invalid bytes go to ``validate``) when its decision is known but
  its snapshot is gone (already labelled, or past the snapshot TTL).

Decisions left unlabelled ``label_horizon_s`` of event time after their transaction are learned
as legitimate (``expire_unlabelled``); a chargeback that comes later is learned as a correction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agents.fraud_outcome import FraudOutcome
from agents.intake import Intake
from agents.messages import RawMessage, refuse
from agents.metrics import Metrics
from agents.stores.fraud import FraudStore
from online_models.engine import MODEL_NAME, FraudEngine
from schemas.errors import InvalidEvent
from schemas.internal_records import LabelledExample, Snapshot
from schemas.settings import Settings
from schemas.validation import LABELS

log = logging.getLogger(__name__)


class UnknownLabelTarget(InvalidEvent):
    """A label for a decided event_id whose snapshot is gone (already labelled, or expired)."""


@dataclass
class LabelStats:
    labels_learned: int = 0
    labels_parked: int = 0
    expired_learned: int = 0


class LabelPath:
    def __init__(self, settings: Settings, engine: FraudEngine, store: FraudStore, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.stats = LabelStats()
        self.intake = Intake(settings, metrics, clock)

    async def on_labels(self, messages: Sequence[RawMessage]) -> FraudOutcome:
        labels, refused = self.intake.split(LABELS, messages)
        outcome = FraudOutcome(refused=refused)
        snapshots, decided = await self.store.take_snapshots(list(dict.fromkeys(lb.event_id for _, lb in labels)))
        learn, park = [], {}
        for msg, label in labels:
            snapshot = snapshots.pop(label.event_id, None)
            if snapshot is not None:
                learn.append(LabelledExample(label.event_id, snapshot, label.is_fraud))
            elif label.event_id not in decided and label.event_id not in park:
                park[label.event_id] = label.is_fraud  # its transaction is not decided yet
            else:
                exc = UnknownLabelTarget("unknown_event", "event_id",
                                         f"no decision waiting for a label for event_id {label.event_id!r} "
                                         "(already labelled, or past the snapshot TTL)")
                outcome.refused.append(refuse(self.settings, msg, "label_join", exc, self.clock()))
        await self.store.park_labels(park)
        self.stats.labels_parked += len(park)
        self.metrics.events.labels(self.settings.topics.fraud_labels, "parked").inc(len(park))
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
            updates.append((snapshot.merchant, self.engine.label_effect(snapshot, example.is_fraud)))
            if example.observed:
                delay = (label_ts or {}).get(example.event_id, snapshot.ts) - snapshot.ts
                self.metrics.labelled(MODEL_NAME, example.is_fraud, snapshot.score, delay)
                self.stats.labels_learned += 1
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
