"""Periodic jobs that survive their own failures.

Faust runs a timer as a supervised task of the app: a body that raises crashes the whole worker
(seen: a lag sample during a rebalance). Every periodic job goes through ``resilient_timer``: a
Redis or network error only delays the job; anything else is a bug, logged with its traceback, and
the job runs again at the next tick.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

import faust
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


def resilient(job: Job, doing: str) -> Job:
    """``job`` that logs instead of raising; ``doing`` names it in the log ("expiring unlabelled decisions").

    >>> import asyncio
    >>> async def broken() -> None:
    ...     raise KeyError("bug")
    >>> asyncio.run(resilient(broken, "sampling")())  # logged, not raised
    """
    @functools.wraps(job)
    async def run() -> None:
        try:
            await job()
        except (RedisError, OSError) as exc:
            log.warning("%s failed, will retry at the next tick: %s", doing, exc)
        except Exception:  # noqa: BLE001 - a bug in one periodic job must not stop the worker
            log.exception("%s failed unexpectedly, will retry at the next tick", doing)
    return run


def resilient_timer(app: faust.App, interval: float, doing: str) -> Callable[[Job], Job]:
    """``@app.timer(interval)`` for a job wrapped by :func:`resilient`."""
    def decorate(job: Job) -> Job:
        return app.timer(interval=interval)(resilient(job, doing))
    return decorate
