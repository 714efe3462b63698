"""A worker on a 3-master 3-replica Redis Cluster; the master holding the fraud path's slot is
killed (-9) mid-stream: its replica takes over, and the verifier finds nothing lost, no event
with two different decisions, and decisions served from Redis again after the failover (those
made in the failover window are degraded, journaled and reconciled, as in a Redis outage)."""

from __future__ import annotations

import asyncio

import pytest
import redis
from scenario import collect, create_all_topics, produce, start
from verifier import Ledger, verify
from waiting import wait_until

from agents.dev.embedded import RedisCluster
from agents.dev.probes import ready
from agents.stores.keys import RedisKeys
from schemas.settings import SecretStr, Settings

pytestmark = pytest.mark.integration
EVENTS = 600
SPAN_S = 24.0


def fraud_master(cluster: RedisCluster, settings: Settings) -> int:
    """The port of the master that holds the fraud path's hash slot."""
    with redis.RedisCluster.from_url(cluster.url) as client:
        return client.get_node_from_key(RedisKeys.from_settings(settings).fraud).port


async def kill_fraud_master(cluster: RedisCluster, port: int) -> None:
    await asyncio.sleep(SPAN_S * 0.4)
    cluster.kill_master(port)


def test_a_master_killed_mid_stream_fails_over_and_the_verifier_finds_nothing_lost(
        settings: Settings, redis_cluster: RedisCluster, tmp_path) -> None:
    settings = settings.replace(redis_url=SecretStr(redis_cluster.url))
    create_all_topics(settings)
    victim = fraud_master(redis_cluster, settings)
    worker = start(settings, tmp_path, "worker")
    ledger = Ledger()
    try:
        wait_until(lambda: ready(settings.web_port), 90, "the worker ready on the cluster")

        async def run() -> None:
            await asyncio.gather(produce(settings, ledger, EVENTS, SPAN_S, repeats=False),
                                 kill_fraud_master(redis_cluster, victim))

        asyncio.run(run())
        decisions, dead = asyncio.run(collect(settings, len(ledger.valid) + ledger.malformed))
        assert worker.alive()
        wait_until(lambda: len(redis_cluster.master_ports()) == redis_cluster.n_masters, 30, "a replica promoted")
    finally:
        worker.stop()
    report = verify(ledger, decisions, dead)
    degraded = sorted(d["event_id"] for d in decisions if d["degraded"])
    print(f"victim {victim}; {report}; degraded {len(degraded)}")
    assert report.missing == [] and report.dead_lettered == [] and report.effective_duplicates == []
    assert report.dead_letters_by_stage.get("validate") == ledger.malformed
    last = [f"k{i}" for i in range(EVENTS - 50, EVENTS) if f"k{i}" in ledger.valid]
    first = {d["event_id"]: d for d in reversed(decisions)}
    assert not any(first[e]["degraded"] for e in last)  # the promoted replica serves the fraud path
