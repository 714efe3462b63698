"""The degraded journal (agents.journal) is on the disk before a degraded decision is emitted."""

from __future__ import annotations

import os

from agents.journal import DegradedJournal
from schemas.internal_records import StoredDecision
from schemas.records import FraudDecision


def record(event_id: str) -> StoredDecision:
    decision = FraudDecision(event_id=event_id, score=0.1, decision="approve", reasons=[], model="m",
                             model_version="1.0.0", degraded=True, late=False, latency_ms=0.0, decided_at=0.0)
    return StoredDecision("transactions/0/1", decision)


def test_journaled_decisions_are_fsynced_and_read_back_by_a_restarted_worker(tmp_path, monkeypatch) -> None:
    synced: list[str] = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), fsync(fd)))
    journal = DegradedJournal(tmp_path / "degraded.jsonl")
    journal.record({"e1": record("e1"), "e2": record("e2")})
    assert synced == [str(tmp_path / "degraded.jsonl")]  # before record() returns, so before the emit
    journal.forget(["e1"])
    assert synced[1:] == [str(tmp_path / "degraded.tmp")]  # the rewrite, before it replaces the file
    restarted = DegradedJournal(tmp_path / "degraded.jsonl")
    assert list(restarted.entries) == ["e2"] and restarted.get("e2").to_bytes() == record("e2").to_bytes()
