"""The mark a worker puts on a request it forwards to the worker that owns the user: only workers
can make it, and each one is good for one request, to one worker, for a few seconds, once.

A mark (header ``X-Streamsense-Forward``) is ``v=1;kid=..;ts=..;hop=1;nonce=..;sig=..`` where ``sig``
is an HMAC-SHA256 over the target worker's URL, the method, the raw path and query as sent, the
SHA-256 of the body and of the ``Authorization`` header, the timestamp, the hop count and a random
nonce. So a captured mark cannot be moved to another path, body, client, worker or moment, and the
receiver keeps the nonces it accepted until they expire, so it cannot be used twice either. A mark
older (or newer) than ``ttl_s`` is refused, and so is any hop count but 1: a forwarded request is
never forwarded again.

The HMAC keys are derived from the signing key ring (``HMAC(signing key, "streamsense-forward-v1")``
per key id): a forwarding signature is never a valid checkpoint signature, nor the reverse, and
during a rotation workers signing with the new key and workers not yet rotated still understand
each other as long as both keep the other's key in their ring.

>>> now = [1000.0]
>>> keys = ForwardKeys.derive([("k0", b"a signing key of at least 32 bytes.")], ttl_s=10.0, clock=lambda: now[0])
>>> mark = keys.sign("http://w2:6066", "POST", "/v1/score", b"{}", "Bearer t")
>>> keys.verify(mark, "http://w2:6066", "POST", "/v1/score", b"{}", "Bearer t")
>>> keys.verify(mark, "http://w2:6066", "POST", "/v1/score", b"{}", "Bearer t")
Traceback (most recent call last):
...
agents.api.forwarding.ForwardRefused: replayed
>>> keys.verify(keys.sign("http://w2:6066", "GET", "/v1/models", b"", "Bearer t"),
...             "http://w2:6066", "GET", "/metrics", b"", "Bearer t")
Traceback (most recent call last):
...
agents.api.forwarding.ForwardRefused: bad signature
>>> late = keys.sign("http://w2:6066", "POST", "/v1/score", b"{}", "Bearer t"); now[0] += 11
>>> keys.verify(late, "http://w2:6066", "POST", "/v1/score", b"{}", "Bearer t")
Traceback (most recent call last):
...
agents.api.forwarding.ForwardRefused: expired
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence

from schemas.settings import Settings

VERSION = "1"
DERIVATION = b"streamsense-forward-v1"


class ForwardRefused(Exception):
    """The mark is malformed, signed with no known key, tampered, expired, replayed or a second hop."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SeenNonces:
    """Nonces of accepted marks, each kept until its mark expires (insertion order is close enough
    to expiry order: marks are accepted only within the freshness window)."""

    def __init__(self) -> None:
        self.expiry: dict[str, float] = {}
        self.order: deque[str] = deque()

    def add(self, nonce: str, expires: float, now: float) -> bool:
        """False when ``nonce`` was seen and has not expired yet."""
        while self.order and self.expiry[self.order[0]] <= now:
            del self.expiry[self.order.popleft()]
        if nonce in self.expiry:
            return False
        self.expiry[nonce] = expires
        self.order.append(nonce)
        return True


class ForwardKeys:
    """Signs with the newest key, verifies with any (the signing key's rotation carries over)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]], ttl_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        if not keys:
            raise ValueError("forwarding needs at least one key")
        self.newest, self.by_id = keys[0][0], dict(keys)
        self.ttl_s, self.clock = ttl_s, clock
        self.seen = SeenNonces()

    @classmethod
    def derive(cls, signing_keys: Sequence[tuple[str, bytes]], ttl_s: float,
               clock: Callable[[], float] = time.time) -> ForwardKeys:
        return cls([(kid, hmac.new(secret, DERIVATION, hashlib.sha256).digest()) for kid, secret in signing_keys],
                   ttl_s, clock)

    @classmethod
    def from_settings(cls, settings: Settings) -> ForwardKeys:
        return cls.derive(settings.signing_keyring().keys, settings.api_forward_ttl_s)

    def _sig(self, key: bytes, target: str, method: str, path_qs: str, body: bytes, authorization: str,
             ts: str, hop: str, nonce: str) -> str:
        message = "\n".join((VERSION, target, method.upper(), path_qs, _digest(body), _digest(authorization.encode()),
                             ts, hop, nonce))
        return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()

    def sign(self, target: str, method: str, path_qs: str, body: bytes, authorization: str, hop: int = 1) -> str:
        """A mark for this request to ``target``; workers only ever send hop 1 (verify refuses others)."""
        ts, hops, nonce = f"{self.clock():.3f}", str(hop), secrets.token_hex(16)
        sig = self._sig(self.by_id[self.newest], target, method, path_qs, body, authorization, ts, hops, nonce)
        return f"v={VERSION};kid={self.newest};ts={ts};hop={hops};nonce={nonce};sig={sig}"

    def verify(self, mark: str, target: str, method: str, path_qs: str, body: bytes, authorization: str) -> None:
        """Returns when the mark is good for this request, here and now (and never again)."""
        try:
            fields = dict(part.split("=", 1) for part in mark.split(";"))
            kid, ts, hop, nonce, sig = (fields[k] for k in ("kid", "ts", "hop", "nonce", "sig"))
            stamped = float(ts)
        except (KeyError, ValueError):
            raise ForwardRefused("malformed") from None
        if fields.get("v") != VERSION or kid not in self.by_id:
            raise ForwardRefused("unknown version or key")
        expected = self._sig(self.by_id[kid], target, method, path_qs, body, authorization, ts, hop, nonce)
        if not hmac.compare_digest(expected, sig):
            raise ForwardRefused("bad signature")
        now = self.clock()
        if not abs(now - stamped) <= self.ttl_s:
            raise ForwardRefused("expired")
        if hop != "1":
            raise ForwardRefused("second hop")
        if not self.seen.add(nonce, stamped + self.ttl_s, now):
            raise ForwardRefused("replayed")
