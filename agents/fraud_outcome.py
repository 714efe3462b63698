"""What the fraud path made of a batch, typed, and the one place it becomes Kafka messages.

The transaction path, the label path and the learner each return a ``FraudOutcome``: decisions,
refused messages, examples for the learner and drift signals. Callers read those fields (the HTTP
API answers from ``decisions`` and ``refused``); ``to_emits`` serialises each kind once, and counts
what it emits (dead letters by stage, drift signals), so a batch that is retried is counted once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from agents.messages import Emit, Refused
from agents.metrics import Metrics
from schemas.internal_records import LearnExample, learn_batches
from schemas.records import DriftSignal, FraudDecision, ReviewCase
from schemas.settings import Settings
from streams.app import MAX_REQUEST_BYTES

log = logging.getLogger(__name__)

LEARN_CHUNK = 100  # examples per message on the learn topic
# Bytes per learn message: a quarter of what the producer sends in one request
# (streams.app.MAX_REQUEST_BYTES), so a batch of many examples never makes a message it refuses.
LEARN_MESSAGE_BYTES = MAX_REQUEST_BYTES // 4


@dataclass
class FraudOutcome:
    decisions: list[FraudDecision] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    examples: list[LearnExample] = field(default_factory=list)  # for the learner, in the order to learn them
    signals: list[DriftSignal] = field(default_factory=list)

    def extend(self, other: FraudOutcome) -> None:
        self.decisions.extend(other.decisions)
        self.refused.extend(other.refused)
        self.examples.extend(other.examples)
        self.signals.extend(other.signals)

    def to_emits(self, settings: Settings, metrics: Metrics) -> list[Emit]:
        emits = [e for d in self.decisions for e in decision_emits(settings, d)]
        for refused in self.refused:
            refused.count(metrics)
            emits.append(refused.emit(settings))
        emits.extend(learn_messages(settings, self.examples))
        emits.extend(drift_emits(settings, metrics, self.signals))
        return emits


def decision_emits(settings: Settings, decision: FraudDecision) -> list[Emit]:
    """A decision for fraud-decisions and, when it is a review, its case for review-cases."""
    key = decision.event_id.encode()
    emits = [Emit(settings.topics.fraud_decisions, key, decision.to_json())]
    if decision.decision == "review":
        emits.append(Emit(settings.topics.review_cases, key,
                          ReviewCase(decision.event_id, decision.decided_at, decision).to_json()))
    return emits


def learn_messages(settings: Settings, examples: Sequence[LearnExample]) -> list[Emit]:
    """Examples for the learner (internal topic, one partition), many to a message: one Kafka
    message per event cost the learner Faust's per-message overhead on every decision."""
    return [Emit(settings.learn_topic, first.encode(), raw)
            for first, raw in learn_batches(examples, LEARN_MESSAGE_BYTES, LEARN_CHUNK)]


def drift_emits(settings: Settings, metrics: Metrics, signals: Sequence[DriftSignal]) -> list[Emit]:
    """Drift signals for drift-signals, counted and logged: the only place a signal is emitted."""
    emits = []
    for signal in signals:
        metrics.drift.labels(signal.target, signal.detector, signal.severity).inc()
        if signal.target == "rule":
            metrics.rules_shadowed.labels(signal.name).inc()
        log.warning("drift: %s %s %s -> %s (%s, %s)%s", signal.target, signal.name, signal.reference, signal.current,
                    signal.detector, signal.severity,
                    "; moved " + ", ".join(f"{m['name']} {m['reference']} -> {m['current']} (PSI {m['psi']})"
                                           for m in signal.moved) if signal.moved else "")
        emits.append(Emit(settings.topics.drift_signals, f"{signal.target}/{signal.name}".encode(), signal.to_json()))
    return emits
