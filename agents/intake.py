"""The decode step: raw messages in, records or dead letters out.

The one place the input path reads the wall clock (decoding itself is pure and takes ``now``),
and where what lenient input let through (unknown fields, unknown categorical values) is counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from agents.messages import RawMessage, Refused, refuse
from agents.metrics import Metrics
from schemas.errors import InvalidEvent
from schemas.settings import Settings
from schemas.validation import UNKEYED, InputRules, Shape, decode


class Intake:
    def __init__(self, settings: Settings, metrics: Metrics, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.rules = InputRules.from_settings(settings)
        self.metrics = metrics
        self.clock = clock

    def decode(self, shape: Shape, raw: bytes, *, key=UNKEYED, now: float | None = None):
        """One message's record (raises ``InvalidEvent``); ``key`` is the Kafka key, or UNKEYED
        when the message did not come through Kafka."""
        decoded = decode(shape, raw, rules=self.rules, now=self.clock() if now is None else now, key=key)
        if decoded.ignored:
            self.metrics.unknown_fields.labels(shape.topic).inc(len(decoded.ignored))
        for name in decoded.unknown_values:
            self.metrics.unknown_values.labels(shape.topic, name).inc()
        return decoded.record

    def split(self, shape: Shape, messages: Sequence[RawMessage], now: float | None = None
              ) -> tuple[list[tuple[RawMessage, object]], list[Refused]]:
        """(message, record) for each valid message, and each other one refused at stage ``validate``."""
        now = self.clock() if now is None else now
        valid, refused = [], []
        for msg in messages:
            try:
                valid.append((msg, self.decode(shape, msg.value or b"", key=msg.key, now=now)))
            except InvalidEvent as exc:
                refused.append(refuse(self.settings, msg, "validate", exc, now))
        return valid, refused
