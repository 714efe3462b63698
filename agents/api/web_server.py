"""Faust's aiohttp web server with limits a public port needs, and without Faust's own pages.

- Headers: aiohttp closes a connection whose request is not complete when its keep-alive timer
  fires; the timer starts when the connection opens and again after each answer, and data arriving
  does not push it back. So ``keepalive_timeout`` is also the time a client has to send a request's
  line and headers (slowloris), and an idle keep-alive connection is closed after it. Bodies have
  their own timeout where they are read (agents.api.server).
- Connections: at most ``max_connections`` open at once, counted from the moment a connection is
  accepted until it is lost; one more is answered 503 with ``Retry-After`` and closed.
- Faust's ``/router`` (cluster topology, key owners), ``/table`` (table contents), ``/graph`` and
  statistics pages are not mounted (streams.app turns their settings off).

Faust 0.15 builds its ``AppRunner`` in the driver's ``__init__`` with no way to pass handler
options, so the driver here replaces it before the server starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp.web import AppRunner
from aiohttp.web_server import Server
from faust.types import AppT
from faust.web.drivers.aiohttp import Web

log = logging.getLogger(__name__)

# A refused client (over the cap, or answered before its body was read) gets this long to read the
# answer while the rest of what it sends is read and dropped; aiohttp's default is 10 s.
LINGER_S = 2.0


@dataclass(frozen=True)
class HttpLimits:
    header_timeout_s: float
    max_connections: int


def busy_response(request_id: str) -> bytes:
    body = json.dumps({"error": "too_many_connections", "message": "this worker has too many open connections; retry",
                       "field": None, "request_id": request_id}).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            f"X-Request-Id: {request_id}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class Refusal(asyncio.Protocol):
    """Answers 503 at once, then reads and drops what the client sends until it hangs up (closing
    with unread data would reset the connection before the client reads the answer)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        request_id = uuid.uuid4().hex[:16]
        log.warning("connection refused: over the connection cap (request %s)", request_id)
        transport.write(busy_response(request_id))  # type: ignore[attr-defined]
        transport.write_eof()  # type: ignore[attr-defined]
        asyncio.get_running_loop().call_later(LINGER_S, transport.close)
        self.transport = transport

    def eof_received(self) -> bool:
        self.transport.close()
        return False


class Counted(asyncio.Protocol):
    """aiohttp's handler for one connection, telling the cap when the connection is lost."""

    def __init__(self, handler: asyncio.Protocol, cap: ConnectionCap) -> None:
        self.handler, self.cap = handler, cap

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received()

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cap.open -= 1
        self.handler.connection_lost(exc)


class ConnectionCap:
    """The protocol factory the listening socket calls per accepted connection. Counting here, not
    in aiohttp's connection list, also counts connections accepted in one burst whose handlers have
    not started yet."""

    def __init__(self, server: Server, limit: int) -> None:
        self.server, self.limit, self.open = server, limit, 0

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.limit:
            return Refusal()
        self.open += 1
        return Counted(self.server(), self)

    def __getattr__(self, name: str) -> Any:  # shutdown, connections, ...: the server's own
        return getattr(self.server, name)


class CappedRunner(AppRunner):
    def __init__(self, *args: Any, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections

    async def _make_server(self) -> Server:
        return ConnectionCap(await super()._make_server(), self.max_connections)  # type: ignore[return-value]


class LimitedWeb(Web):
    def __init__(self, app: AppT, *, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._runner = CappedRunner(self.web_app, access_log=None, keepalive_timeout=limits.header_timeout_s,
                                    lingering_time=LINGER_S, max_connections=limits.max_connections)
