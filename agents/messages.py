"""What a processor takes (raw Kafka messages) and gives back (messages to emit), and dead letters."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from schemas.records import DeadLetter
from schemas.settings import Settings

log = logging.getLogger(__name__)


API_SOURCE = "api"


class Transient(RuntimeError):
    """Handling the same batch again may succeed (its decisions raced another worker's)."""


@dataclass(frozen=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None
    generation: int | None = None  # the consumer-group generation it was read in (writes are fenced by it)
    client: str | None = None  # the API client that submitted it (None from Kafka)

    @classmethod
    def from_api(cls, key: bytes, value: bytes, timestamp: float, index: int = 0,
                 client: str | None = None) -> RawMessage:
        """An event that came over the HTTP API: no topic or partition; ``index`` is its place in
        the batch of API events (what a dead letter cites as the offset)."""
        return cls(API_SOURCE, -1, index, key, value, timestamp, client=client)

    @property
    def via_api(self) -> bool:
        return self.partition < 0

    @property
    def source(self) -> str:
        """Where the event came from: the input offset, or ``api`` for every HTTP event (a client
        retrying the same event_id is then recognised like a redelivered offset)."""
        return API_SOURCE if self.via_api else f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class Emit:
    topic: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Refused:
    """A message that becomes a dead letter: the message and its dead-letter record."""

    msg: RawMessage
    letter: DeadLetter

    def emit(self, settings: Settings) -> Emit:
        return Emit(settings.topics.dead_letters, self.msg.key, self.letter.to_json())

    def count(self, metrics) -> None:
        metrics.dead_letters.labels(self.letter.stage).inc()
        metrics.events.labels(self.letter.source_topic, "dead_letter").inc()


def refuse(settings: Settings, msg: RawMessage, stage: str, exc: BaseException, failed_at: float) -> Refused:
    """``msg`` refused at ``stage``: its bytes (capped), where it came from, the stage and the error."""
    letter = DeadLetter.from_raw(msg.value, key=msg.key, source_topic=msg.topic, partition=msg.partition,
                                 offset=msg.offset, stage=stage, error=exc, cap=settings.dead_letter_raw_bytes,
                                 failed_at=failed_at)
    log.warning("dead letter %s at %s: %s", stage, msg.source, letter.error,
                extra={"topic": msg.topic, "partition": msg.partition, "offset": msg.offset, "stage": stage})
    return Refused(msg, letter)


def dead_letter(settings: Settings, msg: RawMessage, stage: str, exc: BaseException, failed_at: float,
                metrics=None) -> Emit:
    """The dead letter of ``msg`` to emit, counted in ``metrics`` when given."""
    refused = refuse(settings, msg, stage, exc, failed_at)
    if metrics is not None:
        refused.count(metrics)
    return refused.emit(settings)
