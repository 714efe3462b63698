"""Exceptions of arbitrary types, raised at random stages and for random messages of a running
worker (agents.faults, test-only): every transaction still ends as exactly one decision or one
dead letter, and the worker goes on. Then a produce the broker never takes: the worker stops
(exit 75) without acking its batch, and a restarted worker decides it."""

from __future__ import annotations

import asyncio
import time

import pytest
from scenario import assert_nothing_lost_nothing_decided_twice, collect, create_all_topics, outcome, produce, start
from verifier import Ledger, verify

from agents.batching import EXIT_UNSENT
from agents.faults import ENV
from schemas.settings import Settings

pytestmark = pytest.mark.integration

STAGES = "decode!+score+load+commit+label+learn+timer"  # decode!: the same messages fail every time


def test_arbitrary_exceptions_anywhere_lose_no_transaction(settings: Settings, tmp_path) -> None:
    create_all_topics(settings)
    ledger = Ledger()
    worker = start(settings.replace(batch_size=100), tmp_path, "worker", env={ENV: f"5:0.03:{STAGES}"})
    try:
        asyncio.run(produce(settings, ledger, 800, 8.0, repeats=False, label_every=4))
        decisions, dead = asyncio.run(collect(settings, len(ledger.valid) + ledger.malformed))
        assert worker.alive(), "the worker died: see its log"
    finally:
        worker.stop()
    report = verify(ledger, decisions, dead)
    print(f"valid {len(ledger.valid)}, dead-lettered {len(report.dead_lettered)}; {report}")
    assert report.missing == [] and report.two_outcomes == [] and report.effective_duplicates == [], report
    # A user's decisions in production order, also when a batch raises after its commit: an event
    # whose scoring failed in the first attempt keeps its (stored) dead letter in the retry instead
    # of being decided after a later event of its user that the first attempt committed.
    assert report.order_violations == 0, report
    injected = [d for d in dead if "injected at" in d["error"]]
    # The faults did fire, of many types, at several stages, and were isolated to few events: a
    # message failing at decode every time is a dead letter of the batch it came in (bisected).
    assert len({d["error_code"] for d in injected}) >= 4, injected
    # Only the sticky stage is certain to leave dead letters: a random fault elsewhere becomes one only
    # if it strikes again when its message is retried alone, and which draw lands where depends on
    # batch timing (asserting a "score" dead letter failed 2 runs of 3 under load).
    assert "batch" in {d["stage"] for d in injected}, injected
    # Not tighter: random faults also strike the single-message calls that bisecting makes (seen:
    # 80 to 196 of 787 dead-lettered, about 24 of them poisoned at decode).
    assert len(report.dead_lettered) < len(ledger.valid) // 2 and len(decisions) > len(ledger.valid) // 2


def test_outputs_the_broker_never_takes_stop_the_worker_and_its_batch_is_redelivered(settings: Settings,
                                                                                      tmp_path) -> None:
    create_all_topics(settings)
    ledger = Ledger()
    failing = start(settings, tmp_path, "failing", env={ENV: "1:1.0:produce"})
    try:
        asyncio.run(produce(settings, ledger, 40, 1.0))
        deadline = time.monotonic() + 120
        while failing.alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert failing.proc.returncode == EXIT_UNSENT  # it stopped itself, after retrying
    finally:
        failing.stop()
    assert asyncio.run(collect(settings, 1, timeout=3)) == ([], [])  # nothing went out
    worker = start(settings, tmp_path, "worker")
    try:
        report = outcome(settings, ledger)  # the restarted worker got the same batch again
    finally:
        worker.stop()
    assert_nothing_lost_nothing_decided_twice(report, ledger)
