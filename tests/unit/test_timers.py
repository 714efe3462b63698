"""A periodic job that fails logs and runs again at the next tick; it never raises into Faust
(a timer that raises crashes the whole worker)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agents.timers import resilient


def test_a_failing_job_is_logged_and_runs_again(caplog) -> None:
    calls = []

    async def job() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise TypeError("unsupported operand type(s) for -: 'NoneType' and 'int'")
        if len(calls) == 2:
            raise RedisConnectionError("connection refused")

    tick = resilient(job, "sampling consumer lag")
    with caplog.at_level(logging.WARNING, logger="agents.timers"):
        for _ in range(3):
            asyncio.run(tick())
    assert calls == [0, 1, 2]
    bug, outage = caplog.records
    assert bug.levelno == logging.ERROR and bug.exc_info[0] is TypeError
    assert "sampling consumer lag failed unexpectedly" in bug.getMessage()
    assert outage.levelno == logging.WARNING and "connection refused" in outage.getMessage()
    assert tick.__name__ == "job"  # Faust names the timer after the function


def test_cancellation_still_stops_the_job() -> None:
    async def job() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):  # so the worker can stop
        asyncio.run(resilient(job, "anything")())
