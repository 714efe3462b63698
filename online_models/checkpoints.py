"""Signed model checkpoints: pickle runs code when loaded, so nothing is unpickled unverified.

Layout: ``MAGIC``, one JSON header line (what it is, which input offsets it reflects), the
pickled models, then an HMAC-SHA256 over everything before it. A checkpoint whose HMAC does not
verify -- tampered, truncated, unsigned or signed with another key -- is refused before any byte
of it is unpickled.

>>> blob = seal({"w": 1.5}, {"role": "fraud", "version": 3}, key=b"k")
>>> unseal(blob, key=b"k")
({'w': 1.5}, {'role': 'fraud', 'version': 3})
>>> unseal(blob[:-1] + bytes([blob[-1] ^ 1]), key=b"k")
Traceback (most recent call last):
...
online_models.checkpoints.CheckpointRejected: signature does not verify (tampered, truncated or another key)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle

from schemas.errors import StreamsenseError

MAGIC = b"streamsense-checkpoint-1\n"
MAC_BYTES = 32


class CheckpointRejected(StreamsenseError):
    """A checkpoint that must not be loaded."""


def seal(models: object, header: dict, key: bytes) -> bytes:
    if not key:
        raise CheckpointRejected("no signing key configured: refusing to write an unsigned checkpoint")
    body = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + pickle.dumps(models, protocol=5)
    return body + hmac.new(key, body, hashlib.sha256).digest()


def read_header(blob: bytes) -> dict:
    """The header without verifying anything (for listing); never use it to decide what to load."""
    if not blob.startswith(MAGIC):
        raise CheckpointRejected("not a streamsense checkpoint")
    end = blob.index(b"\n", len(MAGIC))
    return json.loads(blob[len(MAGIC):end])


def unseal(blob: bytes, key: bytes) -> tuple[object, dict]:
    if not key:
        raise CheckpointRejected("no signing key configured: refusing to load a checkpoint")
    if len(blob) <= len(MAGIC) + MAC_BYTES or not blob.startswith(MAGIC):
        raise CheckpointRejected("not a streamsense checkpoint, or truncated")
    body, mac = blob[:-MAC_BYTES], blob[-MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise CheckpointRejected("signature does not verify (tampered, truncated or another key)")
    end = body.index(b"\n", len(MAGIC))
    return pickle.loads(body[end + 1:]), json.loads(body[len(MAGIC):end])
