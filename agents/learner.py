"""The one learner of the fraud model.

Labels arrive on every worker (fraud-labels is partitioned like any topic), but the model must not
become N silently diverging copies. So each worker only joins a label to its decision-time
snapshot and forwards the pair to an internal topic with a single partition: the worker that owns
that partition is the learner. It learns into the model it serves and publishes it as signed
checkpoints (agents.lifecycle); every other worker serves the newest checkpoint it has verified.
There is one lineage of versions; a follower lags the learner by at most the publishing interval
plus a second, and every decision names the version that made it.

Each checkpoint carries the learner's position in the learn topic (agents.learn_position), so a
learner that restores one learns every example exactly once, whatever offsets were committed.

The recommender has the same shape (``RecoLearner``): every worker claims the interactions it
consumes and forwards each fresh one, with the user's items before it, to the same learn topic;
the owner of its one partition learns them into the recommender it serves and publishes it under
the role ``reco``, with its own position in the topic; the other workers serve its checkpoints.
Each learner takes only its own kind of example from the topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from aiokafka import TopicPartition

from agents import clients
from agents.fraud_outcome import FraudOutcome
from agents.learn_position import LearnPosition
from agents.messages import RawMessage, refuse
from agents.metrics import Metrics
from online_models.engine import FraudEngine
from online_models.reco_engine import RecoEngine
from schemas.internal_records import (
    InteractionExample,
    LabelledExample,
    LearnExample,
    UnlabelledExample,
    example_from_doc,
    read_learn_batch,
)
from schemas.settings import Settings

log = logging.getLogger(__name__)


class Rereader(Protocol):
    """Reading a range of the learn topic again."""

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[RawMessage]: ...


class LearnTopicReader:
    """Reads a range of the learn topic with a consumer of its own (no group, nothing committed),
    with the worker's broker address and credentials (agents.clients). Seeking the worker's own consumer back was
    tried first: Faust's fetch loop can overwrite the new read offset with the last one of the batch
    it is delivering, and the range is then never read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[RawMessage]:
        """Messages at offsets [start, end) still on the topic (retention may have deleted the first)."""
        tp = TopicPartition(topic, partition)
        consumer = clients.consumer(self.settings, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([tp])
            earliest = (await consumer.beginning_offsets([tp]))[tp]
            consumer.seek(tp, max(start, earliest))
            out: list[RawMessage] = []
            while await consumer.position(tp) < end:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if record.offset < end:
                        out.append(RawMessage(topic, partition, record.offset, record.key, record.value,
                                              record.timestamp / 1000.0))
            return out
        finally:
            await consumer.stop()


class Learner:
    refuses_malformed = True

    def __init__(self, settings: Settings, engine: FraudEngine, metrics: Metrics, reader: Rereader | None = None
                 ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.reader = reader  # None: no positioning (every example read is learned)
        self.at = LearnPosition()
        self.learned = 0
        self.skipped = 0  # examples read again that the model already held

    def position(self) -> dict[str, int]:
        """The learn-topic offsets the model holds everything up to (a checkpoint stamps it)."""
        return dict(self.at.through)

    def resume_after(self, offsets: Mapping[str, int]) -> None:
        prefix = f"{self.settings.learn_topic}/"
        self.at.resume_after({k: v for k, v in offsets.items() if k.startswith(prefix)})

    async def _needed(self, msg: RawMessage) -> list[RawMessage]:
        """What to learn for ``msg``: nothing (the model holds it), ``msg``, or the examples the
        model misses before it, read again, and then ``msg``."""
        verdict = self.at.admit(msg.topic, msg.partition, msg.offset)
        if verdict == "learn" or self.reader is None:
            return [msg]
        if verdict == "skip":
            self.skipped += 1
            return []
        first = verdict[1]
        missing = await self.reader.read(msg.topic, msg.partition, first, msg.offset)
        log.warning("the model holds %s/%d up to offset %d but offset %d came: reading again from %d "
                    "(%d examples)", msg.topic, msg.partition, first - 1, msg.offset, first, len(missing))
        if len(missing) < msg.offset - first:  # retention deleted some: they cannot be learned any more
            log.error("learn examples %s/%d from offset %d expired from the topic before they were learned "
                      "(%d of %d read again)", msg.topic, msg.partition, first, len(missing), msg.offset - first)
        return [*missing, msg]

    async def on_examples(self, messages: Sequence[RawMessage]) -> FraudOutcome:
        outcome = FraudOutcome()
        for incoming in messages:
            for msg in await self._needed(incoming):
                self.at.learned(msg.topic, msg.partition, msg.offset)
                self._learn(msg, outcome)
        self._after_batch(outcome)
        return outcome

    def _after_batch(self, outcome: FraudOutcome) -> None:
        for key, offset in self.at.through.items():
            self.metrics.learn_position.labels(key.rsplit("/", 1)[1]).set(offset)
        outcome.signals.extend(self.engine.take_signals())

    def _apply(self, example: LearnExample) -> bool:
        """Learn ``example`` if it is this learner's kind (False: another learner's)."""
        if isinstance(example, UnlabelledExample):
            self.engine.learn_unlabelled(example.features)
        elif isinstance(example, LabelledExample):
            self.engine.learn_label(example.snapshot, example.is_fraud, event_id=example.event_id,
                                    observed=example.observed)
        else:
            return False
        return True

    def _learn(self, msg: RawMessage, outcome: FraudOutcome) -> None:
        try:
            docs = read_learn_batch(msg.value or b"")
        except (ValueError, KeyError, TypeError) as exc:  # internal topic: only a bug puts junk here
            if self.refuses_malformed:
                outcome.refused.append(refuse(self.settings, msg, "learn", exc, time.time()))
            return
        for doc in docs:
            try:
                example = example_from_doc(doc)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:  # AttributeError: not an object
                if self.refuses_malformed:
                    outcome.refused.append(refuse(self.settings, msg, "learn", exc, time.time()))
                continue
            try:
                if not self._apply(example):
                    continue
            except Exception as exc:  # noqa: BLE001 - one example, not the batch: an example that raised
                # after the model took it must not make the batch raise and be learned again.
                log.exception("learn example %r of %s rejected", example.event_id, msg.source)
                outcome.refused.append(refuse(self.settings, msg, "learn", exc, time.time()))
                continue
            self.learned += 1


class RecoLearner(Learner):
    """The recommender's one learner: interaction examples of the learn topic (see the module doc)."""

    refuses_malformed = False  # the fraud learner reads the same messages and dead-letters them once

    def __init__(self, settings: Settings, engine: RecoEngine, metrics: Metrics, reader: Rereader | None = None
                 ) -> None:
        super().__init__(settings, engine, metrics, reader)  # type: ignore[arg-type]

    def _after_batch(self, outcome: FraudOutcome) -> None:
        """No drift signals, and the learn-position gauge stays the fraud learner's."""

    def _apply(self, example: LearnExample) -> bool:
        if not isinstance(example, InteractionExample):
            return False
        self.engine.learn(example.interaction, set(example.seen))  # type: ignore[call-arg]
        return True
