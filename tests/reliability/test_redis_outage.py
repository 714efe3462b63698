"""Redis killed and restarted mid-stream: every event still decided (degraded while it is down),
the worker neither crashes nor stalls, and decisions use Redis again once it is back."""

from __future__ import annotations

import asyncio
import time

import pytest
from scenario import create_all_topics, first_decisions, produce_steady, start

from agents.dev.embedded import ManagedProcess, start_redis
from schemas.settings import SecretStr, Settings

pytestmark = pytest.mark.integration
EVENTS = 600
SPAN_S = 24.0


async def outage(redis: list[ManagedProcess], port: int, tmp_path) -> None:
    await asyncio.sleep(SPAN_S * 0.3)
    redis[0].kill()
    await asyncio.sleep(SPAN_S * 0.3)
    redis[0] = start_redis(tmp_path, port=port)[0]  # back, empty: no persistence in this test


def test_a_redis_outage_degrades_decisions_but_loses_none(settings: Settings, tmp_path) -> None:
    redis_proc, url = start_redis(tmp_path)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    settings = settings.replace(redis_url=SecretStr(url))
    create_all_topics(settings)
    worker = start(settings, tmp_path, "worker")
    holder = [redis_proc]
    try:
        time.sleep(6)  # join the group before traffic

        async def run() -> dict[str, dict]:
            await asyncio.gather(produce_steady(settings, EVENTS, SPAN_S), outage(holder, port, tmp_path))
            return await first_decisions(settings, EVENTS)

        decisions = asyncio.run(run())
        assert worker.alive()
    finally:
        worker.stop()
        holder[0].stop()
    ordered = [decisions.get(f"r{i}") for i in range(EVENTS)]
    assert all(ordered), f"missing: {[f'r{i}' for i, d in enumerate(ordered) if d is None][:5]}"
    degraded = [i for i, d in enumerate(ordered) if d["degraded"]]
    print(f"{len(degraded)} of {EVENTS} decided degraded, events {degraded[:1]}..{degraded[-1:]}")
    assert degraded  # the outage was felt
    assert not any(d["degraded"] for d in ordered[-50:])  # and it is over: Redis is used again
