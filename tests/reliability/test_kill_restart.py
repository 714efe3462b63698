"""Kill -9 the worker at random points mid-stream, ten times: nothing missing, no second decision."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from scenario import assert_nothing_lost_nothing_decided_twice, create_all_topics, outcome, produce, start
from verifier import Ledger

from agents.dev.embedded import ManagedProcess
from schemas.settings import Settings

pytestmark = pytest.mark.integration
CYCLES = 10
EVENTS = 2400


async def killer(settings: Settings, tmp_path: Path, cycles: int) -> ManagedProcess:
    rng = random.Random(11)
    worker = start(settings, tmp_path, "worker-0")
    for n in range(1, cycles + 1):
        await asyncio.sleep(rng.uniform(3.0, 9.0))
        worker.kill()
        worker = start(settings, tmp_path, f"worker-{n}")
    return worker


def test_ten_kill_minus_nine_cycles_lose_nothing_and_decide_once(settings: Settings, tmp_path) -> None:
    create_all_topics(settings)
    ledger = Ledger()

    async def run() -> ManagedProcess:
        worker, _ = await asyncio.gather(killer(settings, tmp_path, CYCLES), produce(settings, ledger, EVENTS, 75.0))
        return worker

    worker = asyncio.run(run())
    try:
        report = outcome(settings, ledger)
    finally:
        worker.stop()
    assert_nothing_lost_nothing_decided_twice(report, ledger)
