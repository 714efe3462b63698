"""Holding a producer to a steady rate of messages per second."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Call ``await pacer.sent_one()`` after each message: it sleeps whenever the sender is ahead of
    ``rate`` messages/s counted from the pacer's creation, so short sleeps never add up to a drift."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.sent = 0

    async def sent_one(self) -> None:
        self.sent += 1
        ahead = self.sent / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            await asyncio.sleep(ahead)
