"""Waiting on a condition instead of sleeping a fixed time: a test waits as long as the system needs
(no longer), and when the condition never holds it fails naming what it waited for.

>>> calls = iter([0, 0, 3])
>>> wait_until(lambda: next(calls), timeout=5, what="a non-zero count", interval=0)
3
>>> wait_until(lambda: False, timeout=0, what="the impossible")
Traceback (most recent call last):
...
AssertionError: timed out after 0 s waiting for the impossible
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call ``predicate`` until it returns something truthy, and return that; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


async def wait_until_async(predicate: Callable[[], T | Awaitable[T]], timeout: float, what: str,
                           interval: float = 0.2) -> T:
    """``wait_until`` inside an event loop; ``predicate`` may be a plain or an async function."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
