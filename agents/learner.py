"""The one learner of the fraud model.

Labels arrive on every worker (fraud-labels is partitioned like any topic), but the model must not
become N silently diverging copies. So each worker only joins a label to its decision-time
snapshot and forwards the pair to an internal topic with a single partition: the worker that owns
that partition is the learner. It learns into the model it serves and publishes it as signed
checkpoints (agents.lifecycle); every other worker serves the newest checkpoint it has verified.
There is one lineage of versions; a follower lags the learner by at most the publishing interval
plus a second, and every decision names the version that made it.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

from agents.messages import Emit, RawMessage, dead_letter
from agents.metrics import Metrics
from online_models.engine import FraudEngine
from schemas import internal_json
from schemas.settings import Settings

log = logging.getLogger(__name__)


class Learner:
    def __init__(self, settings: Settings, engine: FraudEngine, metrics: Metrics) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.learned = 0

    async def on_examples(self, messages: Sequence[RawMessage]) -> list[Emit]:
        emits = []
        for msg in messages:
            try:
                examples = internal_json.loads(msg.value or b"")["b"]
            except (ValueError, KeyError, TypeError) as exc:  # internal topic: only a bug puts junk here
                emits.append(dead_letter(self.settings, msg, "learn", exc, time.time(), self.metrics))
                continue
            for doc in examples:
                try:
                    if doc["y"] is None:
                        self.engine.learn_unlabelled(doc["s"]["x"])
                    else:
                        self.engine.learn_label(doc["s"], doc["y"], event_id=doc["e"], observed=doc["o"])
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("learn example %r of %s rejected: %s", doc.get("e") if isinstance(doc, dict) else doc,
                              msg.source, exc)
                    emits.append(dead_letter(self.settings, msg, "learn", exc, time.time(), self.metrics))
                    continue
                self.learned += 1
        for signal in self.engine.take_signals():
            self.metrics.drift.labels(signal.target, signal.detector, signal.severity).inc()
            log.warning("drift: %s %s (%s, %s)", signal.target, signal.name, signal.detector, signal.severity)
            emits.append(Emit(self.settings.topics.drift_signals, f"{signal.target}/{signal.name}".encode(),
                              signal.to_json()))
        return emits
