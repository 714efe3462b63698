"""Signed model checkpoints: pickle runs code when loaded, so nothing is unpickled unverified.

Layout: ``MAGIC``, one JSON header line, the pickled models, then an HMAC-SHA256 over everything
before it. The header names the signing key's id and the slot the blob was written for (role,
version, app id) with the input offsets it reflects. A checkpoint is refused before any byte of
it is unpickled when its key id is not configured, its HMAC does not verify (tampered, truncated,
unsigned, another key) or its signed slot is not the slot it was read from (a valid blob copied
to another version, role or deployment).

A model with a parameter that is not a finite number (NaN, inf) is neither sealed nor, when an
older blob holds one, loaded: every score it gave would be NaN.

>>> ring = KeyRing((("k1", b"k" * 32),))
>>> slot = {"role": "fraud", "version": 3, "app_id": "ss-v1"}
>>> blob = seal({"w": 1.5}, {"offsets": {}}, ring, slot)
>>> unseal(blob, ring, slot)
({'w': 1.5}, {'app_id': 'ss-v1', 'kid': 'k1', 'offsets': {}, 'role': 'fraud', 'version': 3})
>>> unseal(blob[:-1] + bytes([blob[-1] ^ 1]), ring, slot)
Traceback (most recent call last):
...
online_models.checkpoints.CheckpointRejected: signature does not verify (tampered, truncated or another key)
>>> unseal(blob, ring, {**slot, "version": 4})
Traceback (most recent call last):
...
online_models.checkpoints.CheckpointRejected: signed for version 3, read as version 4: refusing a blob moved ...
>>> unseal(OLD_MAGIC + b'{}' + bytes(40), ring, slot)
Traceback (most recent call last):
...
online_models.checkpoints.CheckpointRejected: format 1 (signature binds no key id or slot): written before key rotation
>>> seal({"w": float("nan")}, {"offsets": {}}, ring, slot)
Traceback (most recent call last):
...
online_models.checkpoints.CheckpointRejected: a model parameter is not finite (nan): refusing the checkpoint
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import pickle
from collections.abc import Mapping

import numpy as np
from river import stats

from schemas.errors import StreamsenseError
from schemas.keyring import KeyRing

MAGIC = b"streamsense-checkpoint-2\n"
OLD_MAGIC = b"streamsense-checkpoint-1\n"  # no key id and no slot in the signature: never loaded
MAC_BYTES = 32
SLOT_FIELDS = ("role", "version", "app_id")


class CheckpointRejected(StreamsenseError):
    """A checkpoint that must not be loaded."""


class _FiniteOnly(pickle.Pickler):
    """Pickles as usual, refusing any number that is not finite on the way: ``persistent_id`` is
    called with every object pickled, floats and numpy arrays (pickled as raw bytes) included.

    The one infinity a sound model holds is River's "nothing seen yet": a ``stats.Min`` at +inf, a
    ``stats.Max`` at -inf (the anomaly scaler creates them for a feature scored before learned).
    The pickler meets the holder before the value, and lets exactly that value through."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=5)
        self._unseen: set[int] = set()

    def persistent_id(self, obj: object) -> None:
        if isinstance(obj, stats.Min) and obj.min == math.inf:
            self._unseen.add(id(obj.min))
        elif isinstance(obj, stats.Max) and obj.max == -math.inf:
            self._unseen.add(id(obj.max))
        elif isinstance(obj, (float, np.floating)) and not math.isfinite(obj) and id(obj) not in self._unseen or \
                isinstance(obj, np.ndarray) and obj.dtype.kind in "fc" and not np.isfinite(obj).all():
            raise CheckpointRejected(f"a model parameter is not finite ({obj!r}): refusing the checkpoint")
        return None


def finite_pickle(models: object) -> bytes:
    """``pickle.dumps(models)``; CheckpointRejected when any number in them is not finite."""
    out = io.BytesIO()
    _FiniteOnly(out).dump(models)
    return out.getvalue()


def seal(models: object, header: dict, keys: KeyRing, slot: Mapping[str, object]) -> bytes:
    """Sign ``models`` with the newest key, for ``slot`` (role, version, app_id)."""
    if not keys.current:
        raise CheckpointRejected("no signing key configured: refusing to write an unsigned checkpoint")
    signed = {**header, **{f: slot[f] for f in SLOT_FIELDS}, "kid": keys.current_id}
    body = MAGIC + json.dumps(signed, sort_keys=True).encode() + b"\n" + finite_pickle(models)
    return body + hmac.digest(keys.current, body, hashlib.sha256)


def read_header(blob: bytes) -> dict:
    """The header without verifying anything (for listing); never use it to decide what to load."""
    if blob.startswith(OLD_MAGIC):
        raise CheckpointRejected("format 1 (signature binds no key id or slot): written before key rotation")
    if not blob.startswith(MAGIC):
        raise CheckpointRejected("not a streamsense checkpoint")
    end = blob.index(b"\n", len(MAGIC))
    header = json.loads(blob[len(MAGIC):end])
    if not isinstance(header, dict):
        raise CheckpointRejected("header is not an object")
    return header


def unseal(blob: bytes, keys: KeyRing, slot: Mapping[str, object]) -> tuple[object, dict]:
    """The models and header of ``blob``, read from ``slot``, once everything about it verifies."""
    if len(blob) <= len(MAGIC) + MAC_BYTES:
        raise CheckpointRejected("not a streamsense checkpoint, or truncated")
    header = read_header(blob)
    key = keys.get(str(header.get("kid")))
    if not key:
        raise CheckpointRejected(f"signed with key id {header.get('kid')!r}, which is not configured")
    body, mac = blob[:-MAC_BYTES], blob[-MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.digest(key, body, hashlib.sha256)):
        raise CheckpointRejected("signature does not verify (tampered, truncated or another key)")
    for name in SLOT_FIELDS:
        if header.get(name) != slot[name]:
            raise CheckpointRejected(f"signed for {name} {header.get(name)}, read as {name} {slot[name]}: "
                                     "refusing a blob moved to another slot")
    models = pickle.loads(body[body.index(b"\n", len(MAGIC)) + 1:])
    finite_pickle(models)  # verified bytes, but written before this check existed, or by a bug
    return models, header
