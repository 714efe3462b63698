"""Two workers share the stream; one leaves and comes back (a rebalance each way), or is paused
past its session timeout and resumed (a zombie): nothing missing, no second decision."""

from __future__ import annotations

import asyncio
import signal

import pytest
from scenario import assert_nothing_lost_nothing_decided_twice, create_all_topics, outcome, produce, start
from verifier import Ledger

from agents.dev.embedded import ManagedProcess, free_port
from schemas.settings import Settings

pytestmark = pytest.mark.integration
EVENTS = 1800
SPAN_S = 60.0
SESSION_TIMEOUT_S = 10  # streams.app: broker_session_timeout


def run_with(settings: Settings, tmp_path, fault) -> tuple[Ledger, list[ManagedProcess]]:
    create_all_topics(settings)
    workers = [start(settings, tmp_path, "worker-a", free_port()), start(settings, tmp_path, "worker-b", free_port())]
    ledger = Ledger()

    async def run() -> None:
        await asyncio.gather(produce(settings, ledger, EVENTS, SPAN_S), fault(workers))

    try:
        asyncio.run(run())
        report = outcome(settings, ledger)
        assert all(w.alive() for w in workers), [w.describe() for w in workers]
    finally:
        for w in workers:
            w.signal(signal.SIGCONT)
            w.stop()
    assert_nothing_lost_nothing_decided_twice(report, ledger)
    return report, workers


def test_a_worker_leaving_and_rejoining_loses_nothing_and_decides_once(settings: Settings, tmp_path) -> None:
    async def leave_and_rejoin(workers: list[ManagedProcess]) -> None:
        await asyncio.sleep(SPAN_S * 0.3)
        workers[1].stop()  # SIGTERM: a clean leave, its partitions move to worker-a
        await asyncio.sleep(SPAN_S * 0.25)
        workers[1] = start(settings, tmp_path, "worker-b-again", free_port())  # back: partitions split again

    report, _ = run_with(settings, tmp_path, leave_and_rejoin)
    print(f"rebalance: longest stall {report.longest_stall_s:.1f} s")


def test_a_worker_paused_past_its_session_timeout_makes_no_second_decision(settings: Settings, tmp_path) -> None:
    async def pause(workers: list[ManagedProcess]) -> None:
        await asyncio.sleep(SPAN_S * 0.3)
        workers[1].signal(signal.SIGSTOP)  # mid-batch, likely: its writes and sends come late
        await asyncio.sleep(SESSION_TIMEOUT_S + 8)  # the group has given its partitions to worker-a
        workers[1].signal(signal.SIGCONT)

    report, _ = run_with(settings, tmp_path, pause)
    print(f"pause: longest stall {report.longest_stall_s:.1f} s")
