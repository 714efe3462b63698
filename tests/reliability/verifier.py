"""Reads what a reliability test produced (the ledger) and what came out, and reports what went wrong.

- missing: valid events with neither a decision nor a dead letter;
- dead-lettered: valid events whose outcome is a dead letter (a ``dedupe`` one for a repeated
  event_id does not count: the first one is decided);
- two outcomes: valid events with a decision and also such a dead letter;
- effective duplicates: event ids with more than one *different* decision;
- raw duplicates: decision messages beyond the first per event id (redeliveries re-emit the
  same bytes, so these are harmless, but counted);
- order violations: per user, decisions made (``decided_at``) out of the order the user's events
  were produced in (a user's events share a partition, so Kafka promises that order);
- feature state: each user's stored history count against the count recomputed from the ledger;
- dead letters by stage, each input offset counted once (a batch redelivered after a crash
  re-emits its dead letters: at-least-once, counted as raw duplicates);
- recovery time: the longest wall-clock gap between successive first decisions (``decided_at``).
  Traffic is produced at a steady rate, so this is how long output stopped around a fault.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise


@dataclass
class Ledger:
    valid: dict[str, dict] = field(default_factory=dict)  # event_id -> payload (first send)
    sends: list[tuple[str, bytes]] = field(default_factory=list)  # (kind, raw) in production order
    malformed: int = 0
    duplicates: int = 0

    def add_valid(self, payload: dict) -> bytes:
        raw = json.dumps(payload).encode()
        if payload["event_id"] in self.valid:
            self.duplicates += 1
        else:
            self.valid[payload["event_id"]] = payload
        self.sends.append(("valid", raw))
        return raw

    def add_malformed(self, raw: bytes) -> bytes:
        self.malformed += 1
        self.sends.append(("malformed", raw))
        return raw


@dataclass
class Report:
    missing: list[str]
    dead_lettered: list[str]
    two_outcomes: list[str]
    effective_duplicates: list[str]
    raw_duplicates: int
    raw_duplicate_dead_letters: int
    order_violations: int
    dead_letters_by_stage: dict[str, int]
    state_mismatches: list[str]
    longest_stall_s: float = 0.0

    def ok(self) -> bool:
        return not (self.missing or self.two_outcomes or self.effective_duplicates or self.order_violations
                    or self.state_mismatches)


def letter_raw(letter: dict) -> bytes | None:
    """A dead letter's original bytes, when it kept them whole."""
    return None if letter["truncated"] else base64.b64decode(letter["raw_b64"])


def verify(ledger: Ledger, decisions: list[dict], dead_letters: list[dict],
           user_history: dict[str, int] | None = None) -> Report:
    by_event: dict[str, list[dict]] = defaultdict(list)
    for d in decisions:
        by_event[d["event_id"]].append(d)
    distinct = {e: {json.dumps(d, sort_keys=True) for d in ds} for e, ds in by_event.items()}
    stages: dict[str, int] = defaultdict(int)
    offsets = {(d["source_topic"], d["partition"], d["offset"]): d["stage"] for d in dead_letters}
    for stage in offsets.values():
        stages[stage] += 1
    sent_as = {raw: json.loads(raw)["event_id"] for kind, raw in ledger.sends if kind == "valid"}
    lettered = {sent_as.get(letter_raw(d)) for d in dead_letters if d["stage"] != "dedupe"}
    dead_lettered = sorted(e for e in ledger.valid if e in lettered)
    missing = sorted(e for e in ledger.valid if e not in by_event and e not in lettered)
    decided_at = {e: min(d["decided_at"] for d in ds) for e, ds in by_event.items()}
    per_user: dict[str, list[float]] = defaultdict(list)
    for event_id, payload in ledger.valid.items():  # production order
        if event_id in decided_at:
            per_user[payload["user_id"]].append(decided_at[event_id])
    violations = sum(a > b for times in per_user.values() for a, b in pairwise(times))
    times = sorted(decided_at.values())
    mismatches = []
    if user_history is not None:
        expected: dict[str, int] = defaultdict(int)
        for payload in ledger.valid.values():
            expected[payload["user_id"]] += 1
        mismatches = sorted(u for u, n in expected.items() if user_history.get(u) != n)
    return Report(missing=missing, dead_lettered=dead_lettered,
                  two_outcomes=sorted(e for e in dead_lettered if e in by_event),
                  effective_duplicates=sorted(e for e, s in distinct.items() if len(s) > 1),
                  raw_duplicates=sum(len(ds) - 1 for ds in by_event.values()),
                  raw_duplicate_dead_letters=len(dead_letters) - len(offsets), order_violations=violations,
                  dead_letters_by_stage=dict(stages), state_mismatches=mismatches,
                  longest_stall_s=max((b - a for a, b in pairwise(times)), default=0.0))
