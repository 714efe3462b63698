"""A circuit breaker for Redis: after repeated failures, stop calling it for a while.

While open, the fraud path decides from empty state (``degraded``) without waiting on Redis
timeouts, so latency stays bounded; after ``reset_after_s`` one trial call is let through
(half-open) and its success closes the breaker again.

>>> clock = iter([0.0, 1.0, 6.0]).__next__
>>> b = CircuitBreaker(failures=2, reset_after_s=5.0, clock=clock)
>>> b.failure(); b.failure(); b.state
'open'
>>> b.allow(), b.allow(), b.state
(False, True, 'half_open')
>>> b.success(); b.state
'closed'
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, failures: int = 3, reset_after_s: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str], None] | None = None) -> None:
        self.failures = failures
        self.reset_after_s = reset_after_s
        self.clock = clock
        self.on_change = on_change
        self.state = "closed"
        self._count = 0
        self._opened_at = 0.0

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_change:
                self.on_change(state)

    def allow(self) -> bool:
        if self.state == "open" and self.clock() - self._opened_at >= self.reset_after_s:
            self._set("half_open")
        return self.state != "open"

    def success(self) -> None:
        self._count = 0
        self._set("closed")

    def failure(self) -> None:
        self._count += 1
        if self.state == "half_open" or self._count >= self.failures:
            self._opened_at = self.clock()
            self._set("open")
