"""Replay a stream through the fraud engine in memory: the worker's path without Kafka or Redis.

State lives in dicts instead of Redis, but features, scoring and learning are the engine's own,
so figures measured here are the figures the workers would reach on the same stream. Labels are
applied when they arrive in the stream; decisions still unlabelled ``label_horizon_s`` of event
time after their transaction are learned as legitimate, as the workers do, and a chargeback that
comes later still is learned as a correction.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from online_models.engine import FraudEngine
from schemas.internal_records import Snapshot
from schemas.records import FraudDecision, FraudLabel, Transaction
from streams.fraud_features import UserState, apply_merchant_update


@dataclass
class FraudReplay:
    engine: FraudEngine
    label_horizon_s: float
    users: dict[str, UserState] = field(default_factory=dict)
    merchants: dict[str, dict[str, float]] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    decisions: dict[str, FraudDecision] = field(default_factory=dict)
    pending: list[tuple[float, str]] = field(default_factory=list)
    watermark: float = float("-inf")
    late: int = 0
    labels_learned: int = 0
    expired_learned: int = 0
    unknown_labels: int = 0
    drift_signals: list = field(default_factory=list)

    def transaction(self, tx: Transaction) -> FraudDecision:
        """Decide one transaction (a repeated event_id gets its first decision back)."""
        if tx.event_id in self.decisions:
            return self.decisions[tx.event_id]
        merchant = self.engine.merchant_ref(tx.merchant_id)  # as snapshots name it (see _learn)
        scored = self.engine.score(tx, self.users.get(tx.user_id), self.merchants.get(merchant, {}),
                                   decided_at=tx.ts)
        self.users[tx.user_id] = scored.user_state
        self.merchants[merchant] = apply_merchant_update(self.merchants.get(merchant, {}), scored.merchant_update)
        self.snapshots[tx.event_id] = scored.snapshot
        self.decisions[tx.event_id] = scored.decision
        self.engine.learn_unlabelled(scored.snapshot.features)
        heapq.heappush(self.pending, (tx.ts, tx.event_id))
        self.late += scored.late
        self.watermark = max(self.watermark, tx.ts)
        self._expire()
        self.drift_signals.extend(self.engine.take_signals())
        return scored.decision

    def label(self, label: FraudLabel) -> bool:
        """Learn from a label; False when its event is unknown or already learned."""
        snapshot = self.snapshots.pop(label.event_id, None)
        if snapshot is None:
            self.unknown_labels += 1
            return False
        self._learn(snapshot, label.is_fraud, label.event_id)
        self.labels_learned += 1
        return True

    def _expire(self) -> None:
        horizon = self.watermark - self.label_horizon_s
        while self.pending and self.pending[0][0] <= horizon:
            _, event_id = heapq.heappop(self.pending)
            snapshot = self.snapshots.get(event_id)
            if snapshot is not None:
                self._learn(snapshot, False, event_id, observed=False)
                self.snapshots[event_id] = snapshot.learned_as_legitimate()  # kept for a late chargeback
                self.expired_learned += 1

    def _learn(self, snapshot: Snapshot, is_fraud: bool, event_id: str, observed: bool = True) -> None:
        update = self.engine.learn_label(snapshot, is_fraud, event_id=event_id, observed=observed)
        merchant = snapshot.merchant
        self.merchants[merchant] = apply_merchant_update(self.merchants.get(merchant, {}), update)
