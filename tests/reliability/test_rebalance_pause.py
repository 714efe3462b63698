"""Two workers share the stream; one leaves and comes back (a rebalance each way), or is paused
past its session timeout and resumed (a zombie): nothing missing, no second decision."""

from __future__ import annotations

import asyncio
import signal

import pytest
from scenario import assert_nothing_lost_nothing_decided_twice, create_all_topics, outcome, produce, start
from verifier import Ledger, Report
from waiting import wait_until_async

from agents.clients import redis_client
from agents.dev.embedded import ManagedProcess, free_port
from agents.dev.probes import metric, series
from agents.faults import STOP_ENV
from agents.stores.keys import RedisKeys
from schemas.settings import Settings

pytestmark = pytest.mark.integration
EVENTS = 1800
SPAN_S = 60.0
SESSION_TIMEOUT_S = 10  # streams.app: broker_session_timeout


def run_with(settings: Settings, tmp_path, fault, env_b: dict[str, str] | None = None) -> tuple[Report, list[float]]:
    """The report, and how many batches each worker found fenced (a newer owner of their partition)."""
    create_all_topics(settings)
    ports = [free_port(), free_port()]
    workers = [start(settings, tmp_path, "worker-a", ports[0]),
               start(settings, tmp_path, "worker-b", ports[1], env=env_b)]
    ledger = Ledger()

    async def run() -> None:
        await asyncio.gather(produce(settings, ledger, EVENTS, SPAN_S), fault(workers, ports))

    try:
        asyncio.run(run())
        report = outcome(settings, ledger)
        assert all(w.alive() for w in workers), [w.describe() for w in workers]
        fenced = [metric(port, "streamsense_fenced_batches_total") for port in ports]
    finally:
        for w in workers:
            w.signal(signal.SIGCONT)
            w.stop()
    assert_nothing_lost_nothing_decided_twice(report, ledger)
    return report, fenced


def lag_split_between(ports: list[int], settings: Settings) -> bool:
    try:
        reported = [{labels["partition"] for labels, _ in series(port, "streamsense_consumer_lag",
                                                                  topic=settings.topics.transactions)}
                    for port in ports]
    except OSError:  # the restarted worker is not listening yet
        return False
    return (not reported[0] & reported[1]
            and reported[0] | reported[1] == {str(p) for p in range(settings.partitions)})


def test_a_worker_leaving_and_rejoining_loses_nothing_and_decides_once(settings: Settings, tmp_path) -> None:
    async def leave_and_rejoin(workers: list[ManagedProcess], ports: list[int]) -> None:
        await asyncio.sleep(SPAN_S * 0.3)
        workers[1].stop()  # SIGTERM: a clean leave, its partitions move to worker-a
        await asyncio.sleep(SPAN_S * 0.25)
        workers[1] = start(settings, tmp_path, "worker-b-again", ports[1])  # back: partitions split again
        # worker-a reports lag only for the partitions it kept: each partition by one worker, none twice.
        await wait_until_async(lambda: asyncio.to_thread(lag_split_between, ports, settings), 60,
                               "each transactions partition's lag reported by exactly one worker")

    report, _ = run_with(settings, tmp_path, leave_and_rejoin)
    print(f"rebalance: longest stall {report.longest_stall_s:.1f} s")


def stopped(proc: ManagedProcess) -> bool:
    """Whether the process is stopped (state T in /proc/<pid>/stat)."""
    with open(f"/proc/{proc.proc.pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"


async def partition_owners(settings: Settings) -> list[tuple[int, str] | None]:
    """(generation, member) recorded as owner of each transactions partition (agents.stores.fraud)."""
    keys, redis = RedisKeys.from_settings(settings), redis_client(settings)
    try:
        raw = [await redis.get(keys.partition_owner(settings.topics.transactions, p))
               for p in range(settings.partitions)]
    finally:
        await redis.aclose()
    return [(int(v.split(b":", 1)[0]), v.split(b":", 1)[1].decode()) if v else None for v in raw]


def test_a_worker_paused_past_its_session_timeout_makes_no_second_decision(settings: Settings, tmp_path) -> None:
    async def taken_over(paused_generation: int) -> bool:
        """Whether one member, in a generation after the pause, now owns every partition."""
        owners = await partition_owners(settings)
        return None not in owners and len({member for _, member in owners}) == 1 and \
            min(generation for generation, _ in owners) > paused_generation

    async def pause(workers: list[ManagedProcess], ports: list[int]) -> None:
        # worker-b stops itself just before one of its decision commits (agents.faults): a batch in hand
        deadline = asyncio.get_running_loop().time() + SPAN_S
        while not stopped(workers[1]):
            assert asyncio.get_running_loop().time() < deadline, "worker-b never reached its stop"
            await asyncio.sleep(0.2)
        paused_generation = max(generation for generation, _ in filter(None, await partition_owners(settings)))
        await wait_until_async(lambda: taken_over(paused_generation), timeout=SESSION_TIMEOUT_S + 60,
                               what="worker-a owning every partition in a newer generation")
        workers[1].signal(signal.SIGCONT)

    report, fenced = run_with(settings, tmp_path, pause, env_b={STOP_ENV: "40"})
    print(f"pause: longest stall {report.longest_stall_s:.1f} s; batches fenced per worker {fenced}")
    # The zombie did try to write what it had read before the pause, and its commits were refused:
    # worker-a had claimed those partitions in a newer generation.
    assert fenced[1] >= 1
    assert "newer owner than generation" in (tmp_path / "worker-b.log").read_text()
