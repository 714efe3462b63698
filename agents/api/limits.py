"""Bounds on what one API request may take: its body (size and time), its numeric parameters, and
its place among the requests this worker has in progress.

>>> bounded_int("7", "k", 1, 100)
7
>>> bounded_int("9" * 5000, "k", 1, 100)
Traceback (most recent call last):
...
agents.api.auth.ApiError: k must be an integer from 1 to 100
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from faust.web import Request

from agents.api.auth import ApiError

RETRY_AFTER = {"Retry-After": "1"}


def bounded_int(text: str, name: str, low: int, high: int) -> int:
    """``text`` as an integer in [low, high]; anything else (including thousands of digits, which
    ``int()`` refuses with a ValueError of its own) is a 422 naming ``name``."""
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(high)) and low <= int(text) <= high):
        raise ApiError(422, "out_of_range", f"{name} must be an integer from {low} to {high}", name)
    return int(text)


async def read_body(request: Request, cap: int, timeout_s: float) -> bytes:
    """The body: 413 as soon as it passes ``cap`` bytes, 408 when it has not all come in ``timeout_s``."""
    if request.content_length is not None and request.content_length > cap:
        raise ApiError(413, "too_large", f"body of {request.content_length} bytes; the limit is {cap}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > cap:
                    raise ApiError(413, "too_large", f"body over the limit of {cap} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, "body_timeout", f"the body did not arrive within {timeout_s:g} s",
                       headers={"Connection": "close"}) from None
    return b"".join(chunks)


class Pending:
    """At most ``limit`` API requests in progress at once (reading their body, waiting for the owner
    or for a scoring batch, being decided); one more is answered 503 at once instead of joining a
    queue whose wait only grows.

    >>> pending = Pending(1, lambda n: None)
    >>> with pending.slot():
    ...     with pending.slot():
    ...         pass
    Traceback (most recent call last):
    ...
    agents.api.auth.ApiError: this worker has 1 API requests in progress, its limit; retry
    >>> pending.count
    0
    """

    def __init__(self, limit: int, observe: Callable[[int], None]) -> None:
        self.limit, self.observe, self.count = limit, observe, 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.count >= self.limit:
            raise ApiError(503, "overloaded",
                           f"this worker has {self.count} API requests in progress, its limit; retry",
                           headers=RETRY_AFTER)
        self.count += 1
        self.observe(self.count)
        try:
            yield
        finally:
            self.count -= 1
            self.observe(self.count)
