"""Who may call the HTTP API and how often: API keys stored hashed in configuration, scopes, a rate limit.

A key is a random bearer token (``ss_`` + 43 URL-safe characters). Configuration holds only its
SHA-256 (a fast hash is enough: the token is random, not a password), with the client's name and
scopes, as ``client:scope+scope:sha256hex``; several entries are separated by commas.

>>> token, entry = new_api_key("payments", ["score"])
>>> keys = ApiKeys.parse(entry)
>>> keys.authorize(f"Bearer {token}", "score").client
'payments'
>>> keys.authorize(f"Bearer {token}", "admin")
Traceback (most recent call last):
...
agents.api.auth.ApiError: this key lacks scope 'admin' (it has: score)
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

SCOPES = ("score", "recommend", "admin")


class ApiError(Exception):
    """A refusal the API answers with ``status`` and a JSON body naming the ``code`` (and ``field``).

    ``message`` is for the client and never carries internal text (exception messages, hosts,
    ports); that goes in ``detail``, which only the log sees, under the request id the body names.
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers, self.detail = headers or {}, detail

    def body(self, request_id: str) -> dict:
        return {"error": self.code, "message": self.message, "field": self.field, "request_id": request_id}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_key(client: str, scopes: Iterable[str]) -> tuple[str, str]:
    """A fresh token (give it to the client, once) and the configuration entry that admits it."""
    scopes = list(scopes)
    ApiKey.check(client, scopes)
    token = "ss_" + secrets.token_urlsafe(32)
    return token, f"{client}:{'+'.join(scopes)}:{token_hash(token)}"


@dataclass(frozen=True)
class ApiKey:
    client: str
    scopes: frozenset[str]

    @staticmethod
    def check(client: str, scopes: Iterable[str]) -> None:
        if not client or ":" in client or "," in client:
            raise ValueError(f"client name {client!r} must be non-empty without ':' or ','")
        unknown = set(scopes) - set(SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes {sorted(unknown)}; known: {', '.join(SCOPES)}")


@dataclass
class ApiKeys:
    by_hash: dict[str, ApiKey] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> ApiKeys:
        """Entries ``client:scope+scope:sha256hex``, comma-separated; a malformed entry is a ValueError."""
        keys = cls()
        for entry in filter(None, (e.strip() for e in text.split(","))):
            parts = entry.split(":")
            if len(parts) != 3 or len(parts[2]) != 64:
                raise ValueError(f"API key entry must be client:scope+scope:sha256hex, got {entry[:20]!r}...")
            client, scopes, digest = parts
            scope_set = frozenset(filter(None, scopes.split("+")))
            ApiKey.check(client, scope_set)
            keys.by_hash[digest.lower()] = ApiKey(client, scope_set)
        return keys

    def authorize(self, authorization: str | None, scope: str) -> ApiKey:
        """The caller's key if it is known and has ``scope``; else 401 (who are you) or 403 (not allowed)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <api key>'",
                           headers={"WWW-Authenticate": "Bearer"})
        key = self.by_hash.get(token_hash(token.strip()))
        if key is None:
            raise ApiError(401, "unauthenticated", "unknown API key", headers={"WWW-Authenticate": "Bearer"})
        if scope not in key.scopes:
            has = ", ".join(sorted(key.scopes))
            raise ApiError(403, "forbidden", f"this key lacks scope {scope!r} (it has: {has})")
        return key


class RateLimiter:
    """A token bucket per client: ``rate`` requests per second on average, bursts up to ``burst``.

    >>> now = [0.0]
    >>> limit = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    >>> limit.take("a"), limit.take("a"), limit.take("a"), limit.take("b")
    (0.0, 0.0, 1.0, 0.0)
    >>> now[0] = 1.0; limit.take("a")
    0.0
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def take(self, client: str) -> float:
        """0.0 when the request may go ahead, else the seconds until it may."""
        now = self.clock()
        tokens, at = self.buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self.buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self.buckets[client] = (tokens - 1.0, now)
        return 0.0
