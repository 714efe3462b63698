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
from collections.abc import Sequence

from agents.fraud_outcome import FraudOutcome
from agents.messages import RawMessage, refuse
from agents.metrics import Metrics
from online_models.engine import FraudEngine
from schemas.internal_records import UnlabelledExample, example_from_doc, read_learn_batch
from schemas.settings import Settings

log = logging.getLogger(__name__)


class Learner:
    def __init__(self, settings: Settings, engine: FraudEngine, metrics: Metrics) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.learned = 0

    async def on_examples(self, messages: Sequence[RawMessage]) -> FraudOutcome:
        outcome = FraudOutcome()
        for msg in messages:
            try:
                docs = read_learn_batch(msg.value or b"")
            except (ValueError, KeyError, TypeError) as exc:  # internal topic: only a bug puts junk here
                outcome.refused.append(refuse(self.settings, msg, "learn", exc, time.time()))
                continue
            for doc in docs:
                try:
                    example = example_from_doc(doc)
                    if isinstance(example, UnlabelledExample):
                        self.engine.learn_unlabelled(example.features)
                    else:
                        self.engine.learn_label(example.snapshot, example.is_fraud, event_id=example.event_id,
                                                observed=example.observed)
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("learn example %r of %s rejected: %s", doc.get("e") if isinstance(doc, dict) else doc,
                              msg.source, exc)
                    outcome.refused.append(refuse(self.settings, msg, "learn", exc, time.time()))
                    continue
                self.learned += 1
        outcome.signals.extend(self.engine.take_signals())
        return outcome
