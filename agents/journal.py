"""Decisions made without Redis, journaled until Redis has them.

A degraded decision has no stored record, so a redelivery of its input (the worker crashed before
its offset was committed, or Redis came back) would be decided again -- differently. Each one is
appended to a journal file in ``data_dir`` before it is emitted. While Redis is away, a redelivery
is answered from the journal, byte for byte; when Redis answers again, every journaled decision is
written as its event's stored decision (only where none is stored: a decision stored meanwhile
wins) and the journal is emptied.

The file survives the worker (kill -9 included) and the machine (a power cut): each batch's lines
are fsynced before its decisions are emitted, and the rewritten file before it replaces the old.
It is this worker's own: a partition that moves to another worker during an outage is not covered
(RELIABILITY.md says the window).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from schemas import internal_json
from schemas.internal_records import StoredDecision
from schemas.settings import Settings

log = logging.getLogger(__name__)


class DegradedJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, StoredDecision] = {}
        if path.exists():
            for line in path.read_bytes().splitlines():
                try:
                    doc = internal_json.loads(line)
                    self.entries[doc["e"]] = StoredDecision.from_bytes(doc["r"].encode())
                except (ValueError, KeyError, TypeError) as exc:  # a line torn by a crash mid-write
                    log.error("skipping an unreadable line of %s: %s", path, exc)
            log.warning("%d degraded decisions journaled before a restart wait for Redis", len(self.entries))

    @classmethod
    def for_settings(cls, settings: Settings) -> DegradedJournal:
        return cls(Path(settings.data_dir) / f"degraded-{settings.redis_key_prefix.replace(':', '_')}.jsonl")

    def get(self, event_id: str) -> StoredDecision | None:
        return self.entries.get(event_id)

    def record(self, records: Mapping[str, StoredDecision]) -> None:
        """Append ``records`` (event_id -> decision); returns once the file has them."""
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            fh.write(_lines(records))
            durable(fh)
        self.entries.update(records)

    def forget(self, event_ids: Iterable[str]) -> None:
        """Drop entries Redis now holds; the file is rewritten whole (replaced atomically)."""
        for event_id in event_ids:
            self.entries.pop(event_id, None)
        if not self.entries:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(_lines(self.entries))
            durable(fh)
        os.replace(tmp, self.path)


def durable(fh) -> None:
    """On the disk, not only in the page cache: a degraded decision already emitted must not be
    forgotten by a power cut, or its redelivery is decided again, differently."""
    fh.flush()
    os.fsync(fh.fileno())


def _lines(records: Mapping[str, StoredDecision]) -> bytes:
    return b"".join(internal_json.dumps({"e": e, "r": r.to_bytes().decode()}) + b"\n" for e, r in records.items())
