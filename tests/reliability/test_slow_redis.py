"""Redis turns slow (a delay proxy on loopback) mid-stream: the circuit breaker opens, decisions
stop waiting on Redis (degraded, fast), and it closes again once Redis is quick."""

from __future__ import annotations

import asyncio
import statistics

import pytest
from delay_proxy import DelayProxy
from scenario import create_all_topics, first_decisions, produce_steady, start
from waiting import wait_until

from agents.dev.probes import metric, ready
from schemas.settings import SecretStr, Settings

pytestmark = pytest.mark.integration
EVENTS = 600
SPAN_S = 24.0
DELAY_S = 0.6  # per Redis round trip: well past redis_slow_call_s, under the 2 s socket timeout


async def slow_spell(proxy: DelayProxy) -> None:
    await asyncio.sleep(SPAN_S * 0.25)
    proxy.delay = DELAY_S
    await asyncio.sleep(SPAN_S * 0.3)
    proxy.delay = 0.0


def test_a_slow_redis_opens_the_breaker_and_latency_stays_bounded(settings: Settings, redis_url: str,
                                                                     tmp_path) -> None:
    with DelayProxy(int(redis_url.rsplit(":", 1)[1].split("/")[0])) as proxy:
        settings = settings.replace(redis_url=SecretStr(f"redis://127.0.0.1:{proxy.port}/0"))
        create_all_topics(settings)
        worker = start(settings, tmp_path, "worker")
        try:
            wait_until(lambda: ready(settings.web_port), timeout=60, what="the worker's partitions (before traffic)")

            async def run() -> dict[str, dict]:
                await asyncio.gather(produce_steady(settings, EVENTS, SPAN_S), slow_spell(proxy))
                return await first_decisions(settings, EVENTS)

            decisions = asyncio.run(run())
            assert worker.alive()
            slow = metric(settings.web_port, "streamsense_redis_errors_total", operation="slow")
        finally:
            worker.stop()
    ordered = [decisions.get(f"r{i}") for i in range(EVENTS)]
    assert all(ordered), f"missing: {[f'r{i}' for i, d in enumerate(ordered) if d is None][:5]}"
    degraded = [d for d in ordered if d["degraded"]]
    latency = sorted(d["latency_ms"] for d in ordered)
    print(f"slow batches {slow:.0f}; {len(degraded)} of {EVENTS} degraded; decision latency p50 "
          f"{statistics.median(latency):.1f} ms, max {latency[-1]:.0f} ms; degraded p50 "
          f"{statistics.median(d['latency_ms'] for d in degraded) if degraded else 0:.1f} ms")
    assert slow >= 3 and degraded  # the breaker opened on slowness alone: Redis never failed
    assert statistics.median(d["latency_ms"] for d in degraded) < 50  # open: no waiting on Redis
    assert latency[-1] < 2 * 2000 + 1000  # worst case: a trial batch's two round trips, each under the timeout
    assert not any(d["degraded"] for d in ordered[-50:])  # Redis quick again: the breaker closed
