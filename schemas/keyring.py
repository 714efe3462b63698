"""Secret keys with ids: the checkpoint signing keys (several, for rotation) and the pseudonym key.

Signing: ``STREAMSENSE_SIGNING_KEYS=kid2:secret2,kid1:secret1``, newest first. The newest signs;
any listed key verifies what it signed (the key id travels in the signed header). A single
``STREAMSENSE_SIGNING_KEY`` is the ring with one key, id ``k0``.

Pseudonyms: one key, ``STREAMSENSE_PSEUDONYM_KEY`` with its id ``STREAMSENSE_PSEUDONYM_KEY_ID``
(default ``p0``). Every pseudonym starts with the key id, so state written under a retired key is
recognisable by its Redis key name (a pseudonym cannot be "verified" with an older key: a new key
makes new names, and the old state is simply not found; see SECURITY.md, rotation).

>>> ring = parse_keyring("signing_keys", "new:" + "n" * 32 + ",old:" + "o" * 32)
>>> ring.current_id, ring.ids
('new', ('new', 'old'))
>>> ring.get("old") == b"o" * 32, ring.get("gone")
(True, None)
>>> Pseudonyms("p1", b"k" * 32).of("alice")
'p1.6664a42048c6d6d7fe36'
>>> Pseudonyms("p1", b"k" * 32).tag("FR")
'47dd86fd'
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass

from schemas.errors import StreamsenseError

MIN_KEY_BYTES = 32
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
# The values these settings had as defaults: published in the source, so never a secret.
PUBLIC_DEFAULTS = frozenset({"dev-only-pseudonym-key", "dev-only-signing-key"})


class WeakKey(StreamsenseError):
    """A key that must not protect anything outside development."""


def weakness(secret: str) -> str | None:
    """Why ``secret`` is unfit as a key, or None.

    >>> weakness(""), weakness("dev-only-signing-key"), weakness("x" * 31), weakness("x" * 32)
    ('it is empty', 'it is a public default', 'it is 31 bytes, under 32', None)
    """
    if not secret:
        return "it is empty"
    if secret in PUBLIC_DEFAULTS:
        return "it is a public default"
    size = len(secret.encode())
    return f"it is {size} bytes, under {MIN_KEY_BYTES}" if size < MIN_KEY_BYTES else None


@dataclass(frozen=True)
class KeyRing:
    """Keys by id, newest first: the first signs, every one verifies."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def current_id(self) -> str:
        return self.keys[0][0]

    @property
    def current(self) -> bytes:
        return self.keys[0][1]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(kid for kid, _ in self.keys)

    def get(self, kid: str) -> bytes | None:
        return next((secret for k, secret in self.keys if k == kid), None)


def parse_keyring(setting: str, text: str) -> KeyRing:
    """``kid:secret,kid:secret`` (newest first) as a KeyRing; a malformed entry names ``setting``.

    >>> parse_keyring("signing_keys", "a:x,a:y")
    Traceback (most recent call last):
    ...
    schemas.keyring.WeakKey: signing_keys: key id 'a' is listed twice
    """
    keys: list[tuple[str, bytes]] = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        kid, sep, secret = entry.partition(":")
        if not sep or not KEY_ID.fullmatch(kid):
            raise WeakKey(f"{setting}: entries are kid:secret with kid of [A-Za-z0-9_.-]{{1,32}}")
        if kid in (k for k, _ in keys):
            raise WeakKey(f"{setting}: key id {kid!r} is listed twice")
        keys.append((kid, secret.encode()))
    if not keys:
        raise WeakKey(f"{setting}: no key")
    return KeyRing(tuple(keys))


@dataclass(frozen=True)
class Pseudonyms:
    """Keyed HMAC-SHA256 of ids: nothing that reaches Redis can be reversed without the key."""

    key_id: str
    key: bytes

    def of(self, value: str) -> str:
        """``<key id>.<20 hex>`` (80 bits: collisions between ids are negligible)."""
        return f"{self.key_id}.{self._mac(value)[:20]}"

    def made(self, pseudonym: str) -> bool:
        """Whether ``pseudonym`` has this key's form (a raw id or another key's pseudonym has not).

        >>> p = Pseudonyms("p1", b"k" * 32)
        >>> p.made(p.of("shop")), p.made("shop"), p.made(Pseudonyms("p0", b"k" * 32).of("shop"))
        (True, False, False)
        """
        head, sep, mac = pseudonym.partition(".")
        return head == self.key_id and len(mac) == 20

    def tag(self, value: str) -> str:
        """8 hex: enough to tell one user's few merchants, devices or countries apart."""
        return self._mac(value)[:8]

    def _mac(self, value: str) -> str:
        return _mac(self.key, value)


@functools.lru_cache(maxsize=16_384)  # about 5 MB at most
def _mac(key: bytes, value: str) -> str:
    """An id's HMAC, computed once while it recurs: one event names its user, merchant, device and
    country up to three times (features, snapshot, Redis keys), and active users recur
    (py-spy: 4 % of a fraud worker's CPU samples were this digest)."""
    return hmac.digest(key, value.encode("utf-8"), hashlib.sha256).hex()
