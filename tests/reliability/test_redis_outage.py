"""Redis killed and restarted mid-stream, and the worker killed (-9) and restarted during the outage:
every event still decided (degraded while Redis is down), never twice differently (degraded
decisions are journaled), and decisions use Redis again once it is back. A worker that starts
while Redis is down starts anyway and decides (degraded)."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis import Redis
from scenario import create_all_topics, every_decision, first_decisions, produce_steady, start

from agents.dev.embedded import ManagedProcess, free_port, start_redis
from agents.dev.probes import metric, ready, ready_state
from schemas.settings import SecretStr, Settings

pytestmark = pytest.mark.integration
EVENTS = 600
SPAN_S = 24.0


async def outage(redis: list[ManagedProcess], port: int, tmp_path, worker: list[ManagedProcess],
                 restart) -> None:
    await asyncio.sleep(SPAN_S * 0.3)
    redis[0].kill()
    await asyncio.sleep(SPAN_S * 0.15)
    worker[0].kill()  # mid-outage: its uncommitted degraded decisions come again to the next worker
    worker[0] = restart()
    await asyncio.sleep(SPAN_S * 0.15)
    redis[0] = start_redis(tmp_path, port=port)[0]  # back, empty: no persistence in this test


def test_a_redis_outage_and_a_worker_kill_during_it_degrade_decisions_but_lose_or_change_none(
        settings: Settings, tmp_path) -> None:
    redis_proc, url = start_redis(tmp_path)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    settings = settings.replace(redis_url=SecretStr(url))
    create_all_topics(settings)
    worker = [start(settings, tmp_path, "worker")]
    holder = [redis_proc]
    try:
        deadline = time.monotonic() + 90
        while not ready(settings.web_port) and time.monotonic() < deadline:  # joined, and has met this Redis
            time.sleep(0.5)

        async def run() -> dict[str, list[dict]]:
            await asyncio.gather(produce_steady(settings, EVENTS, SPAN_S),
                                 outage(holder, port, tmp_path, worker, lambda: start(settings, tmp_path, "worker-2")))
            return await every_decision(settings, EVENTS)

        every = asyncio.run(run())
        decisions = {event_id: docs[0] for event_id, docs in every.items()}
        assert worker[0].alive()
        # The restarted Redis is empty: the worker noticed and says so, it does not trust it silently.
        losses = metric(settings.web_port, "streamsense_redis_data_loss_total")
        warnings = ready_state(settings.web_port)["warnings"]
    finally:
        worker[0].stop()
        holder[0].stop()
    changed = [e for e, docs in every.items() if any(d != docs[0] for d in docs)]
    assert changed == [], f"effective duplicates: {changed[:5]}"  # raw duplicates are the same bytes
    print(f"raw duplicates {sum(len(docs) - 1 for docs in every.values())}")
    ordered = [decisions.get(f"r{i}") for i in range(EVENTS)]
    assert all(ordered), f"missing: {[f'r{i}' for i, d in enumerate(ordered) if d is None][:5]}"
    degraded = [i for i, d in enumerate(ordered) if d["degraded"]]
    print(f"{len(degraded)} of {EVENTS} decided degraded, events {degraded[:1]}..{degraded[-1:]}")
    assert degraded  # the outage was felt
    assert not any(d["degraded"] for d in ordered[-50:])  # and it is over: Redis is used again
    assert losses == 1 and any("Redis lost its data" in w for w in warnings), warnings


def test_a_worker_starts_while_redis_is_down_decides_degraded_and_uses_redis_once_it_is_up(settings: Settings,
                                                                                           tmp_path) -> None:
    port = free_port()  # nothing listens there yet
    settings = settings.replace(redis_url=SecretStr(f"redis://127.0.0.1:{port}/0"))
    create_all_topics(settings)
    worker = start(settings, tmp_path, "worker")
    redis: ManagedProcess | None = None
    try:
        down = asyncio.run(produce_and_collect(settings, "down", 20, 2.0))
        assert worker.alive() and not ready(settings.web_port)  # up, deciding, and saying Redis is missing
        redis = start_redis(tmp_path, port=port)[0]
        Redis.from_url(f"redis://127.0.0.1:{port}/0").config_set("maxmemory-policy", "volatile-lru")
        up = asyncio.run(produce_and_collect(settings, "up", 40, 16.0))
        assert worker.alive()
        warnings = ready_state(settings.web_port)["warnings"]
    finally:
        worker.stop()
        if redis is not None:
            redis.stop()
    assert len(down) == 20 and all(d["degraded"] for d in down.values())
    assert len(up) == 40 and not any(up[f"up{i}"]["degraded"] for i in range(30, 40))  # Redis in use again
    log = (tmp_path / "worker.log").read_text()
    assert "Redis unreachable at start" in log
    assert any("volatile-lru" in w for w in warnings) and "maxmemory-policy is volatile-lru" in log  # loudly



async def produce_and_collect(settings: Settings, prefix: str, events: int, span_s: float) -> dict[str, dict]:
    await produce_steady(settings, events, span_s, prefix)
    return await first_decisions(settings, events, prefix)
