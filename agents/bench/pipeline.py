"""`streamsense bench pipeline`: the fraud and recommendation paths against Faust's own ceiling and
the naive way, side by side in one run, on the embedded broker and a real Redis.

Every scenario runs in its own worker process, on its own topics (same partitions, same messages):
- throughput: a backlog of N events is loaded first, then the worker starts; events/s counts from
  its first processed event to its last (group joins are excluded), CPU seconds are the worker
  process's own over the same span; median of ``runs``;
- latency: a paced producer offers half the scenario's measured capacity (or a fixed ``rate``) once
  the worker is ready; producer timestamp to the output read back (decision, recommendation); the
  ceilings report the time at which they decoded (sent) each event;
- memory: Redis bytes and worker RSS after 100,000 distinct users; RSS over a constant-cardinality
  soak (start, middle, end).

Figures go to stdout and, with ``--json``, to a file; targets are printed as met / missed, never
asserted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from agents.bench.alone import alone
from agents.bench.io import (
    Message,
    cpu_seconds,
    distinct_user_traffic,
    fraud_traffic,
    paced,
    preload,
    processed,
    read_back,
    reco_traffic,
    rss_bytes,
)
from agents.bench.report import BASELINES, SCENARIOS
from agents.clients import sync_redis_client
from agents.commands.topics import create_topics
from agents.dev.embedded import EmbeddedStack, ManagedProcess, free_port, run_keys
from agents.dev.stack import start_worker, wait_ready
from agents.sim.traffic import SIMULATED_LABEL_HORIZON_S
from schemas.settings import SecretStr, Settings, Topics

# Each /metrics scrape costs the worker about 2 CPU ms (measured on an idle worker: 47 -> 80 CPU ms
# per second when scraped every 20 ms): polled every 20 ms, that was charged to every event.
METRICS_POLL_S = 0.1


@dataclass
class Throughput:
    events: int
    seconds: float
    cpu_s: float
    rss: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_1k(self) -> float:
        return self.cpu_s / self.events * 1000


@dataclass
class Latency:
    offered: float
    seconds: float
    sent: int
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        xs = sorted(self.latencies_ms)
        if not xs:
            return {"offered": self.offered, "answered": 0}
        return {"offered": self.offered, "answered": len(xs), "p50": statistics.median(xs),
                "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))], "max": xs[-1]}


class Bench:
    """One embedded broker and Redis; each scenario run gets fresh topics, a fresh app id and a flushed Redis."""

    def __init__(self, stack: EmbeddedStack, log_dir: Path, seed: int = 42) -> None:
        self.stack, self.log_dir, self.seed = stack, log_dir, seed
        self.redis = sync_redis_client(Settings(redis_url=SecretStr(stack.redis_url)))
        self._runs = itertools.count()

    def settings(self, scenario: str) -> Settings:
        run = f"bench-{scenario}-{next(self._runs)}"
        topics = Topics(**{f.name: f"{run}-{getattr(Topics(), f.name)}" for f in dataclasses.fields(Topics)})
        # Tuning from STREAMSENSE_* variables applies (batch size, fetch wait...); where it runs does not.
        return Settings.from_env().replace(
            bootstrap_servers=self.stack.bootstrap, redis_url=SecretStr(self.stack.redis_url), app_id=run,
            topics=topics, label_horizon_s=SIMULATED_LABEL_HORIZON_S, data_dir=str(self.log_dir / run),
            web_port=free_port(), seed=self.seed, **run_keys())

    def prepare(self, settings: Settings) -> None:
        self.redis.flushall()
        asyncio.run(create_topics(settings))

    def start(self, scenario: str, settings: Settings, report: Path | None = None, expect: int = 0
              ) -> ManagedProcess:
        if scenario in ("fraud", "reco"):
            proc, _ = start_worker(settings, 0, self.log_dir, port=settings.web_port)
            return proc
        env = {**os.environ, **settings.to_env(), "BENCH_REPORT": str(report), "BENCH_EXPECT": str(expect)}
        return ManagedProcess(f"{settings.app_id}", [sys.executable, "-m", "agents.bench.baselines", scenario],
                              env=env, log_dir=self.log_dir)

    # -- throughput ----------------------------------------------------------------------------
    def throughput(self, scenario: str, messages: list[Message], timeout: float = 600.0) -> Throughput:
        settings = self.settings(scenario)
        self.prepare(settings)
        counts = asyncio.run(preload(settings, messages))
        inputs = {"reco": ("interactions", "reco_requests")}.get(scenario, ("transactions",))
        expect = sum(counts.get(attr, 0) for attr in inputs)
        report = self.log_dir / f"{settings.app_id}.json"
        proc = self.start(scenario, settings, report, expect)
        try:
            if scenario in BASELINES:
                doc = self._wait_report(proc, report, timeout)
                return Throughput(doc["n"], doc["last"] - doc["first"], doc["cpu"], rss_bytes(proc.pid))
            return self._poll_worker(proc, settings, [getattr(settings.topics, a) for a in inputs], expect, timeout)
        finally:
            proc.stop()

    def alone(self, scenario: str, messages: list[Message]) -> Throughput:
        """The same messages through the processor alone, in this process (agents.bench.alone)."""
        settings = self.settings(f"{scenario}-alone")
        self.redis.flushall()
        events, seconds, cpu = alone(scenario, settings, messages)
        return Throughput(events, seconds, cpu)

    @staticmethod
    def _wait_report(proc: ManagedProcess, report: Path, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while not report.exists():
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{proc.describe()} did not finish its events")
            time.sleep(0.05)
        return json.loads(report.read_text())

    @staticmethod
    def _poll_worker(proc: ManagedProcess, settings: Settings, topics: list[str], expect: int,
                     timeout: float) -> Throughput:
        deadline = time.monotonic() + timeout
        first = cpu_first = None
        while time.monotonic() < deadline and proc.alive():
            try:
                done = processed(settings.web_port, topics)
            except OSError:
                done = 0
            now, cpu = time.time(), cpu_seconds(proc.pid)
            if done and first is None:
                first, cpu_first, first_done = now, cpu, done
            if done >= expect and first is not None:
                # The first poll saw ``first_done`` events already processed: count from there.
                return Throughput(expect - first_done, now - first, cpu - cpu_first, rss_bytes(proc.pid))
            time.sleep(METRICS_POLL_S)
        raise RuntimeError(f"{proc.describe()} did not finish its {expect} events")

    # -- latency -------------------------------------------------------------------------------
    def latency(self, scenario: str, messages: list[Message], rate: float) -> Latency:
        settings = self.settings(scenario)
        self.prepare(settings)
        report = self.log_dir / f"{settings.app_id}.json"
        expect = sum(1 for attr, _, _ in messages if attr == "transactions")
        proc = self.start(scenario, settings, report, expect)
        try:
            self._wait_started(scenario, proc, settings, report)
            result = Latency(rate, len(messages) / rate, 0)
            if scenario in ("ceiling", "emit"):
                result.sent = asyncio.run(paced(settings, messages, rate, {}, "event_id"))
                result.latencies_ms = [x * 1000 for x in self._wait_report(proc, report, 120)["latencies"]]
            else:
                output, id_field = {"reco": (settings.topics.recommendations, "request_id")}.get(
                    scenario, (settings.topics.fraud_decisions, "event_id"))
                result.sent, result.latencies_ms = asyncio.run(self._measure(settings, messages, rate, output,
                                                                             id_field))
            return result
        finally:
            proc.stop()

    @staticmethod
    async def _measure(settings: Settings, messages: list[Message], rate: float, output: str, id_field: str
                       ) -> tuple[int, list[float]]:
        sent_at: dict[str, float] = {}
        latencies: list[float] = []
        done = asyncio.Event()
        reader = asyncio.create_task(read_back(settings, output, id_field, sent_at, done, latencies))
        await asyncio.sleep(1.0)  # the reader is positioned at the end before anything is sent
        sent = await paced(settings, messages, rate, sent_at, id_field)
        done.set()
        await asyncio.wait_for(reader, 300)
        return sent, [x * 1000 for x in latencies]

    def _wait_started(self, scenario: str, proc: ManagedProcess, settings: Settings, report: Path) -> None:
        """Until the worker consumes: /ready for streamsense; for the baselines, a probe gets through."""
        if scenario in ("fraud", "reco"):
            wait_ready(proc, settings.web_port)
            return
        marker = Path(str(report) + ".started")
        probe = [("transactions", b"probe", next(fraud_traffic(1, 0))[2])]
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline and proc.alive():
            asyncio.run(preload(settings, probe))
            time.sleep(0.5)
        if not marker.exists():
            raise RuntimeError(f"{proc.describe()} never consumed")

    # -- memory --------------------------------------------------------------------------------
    def memory(self, users: int) -> dict:
        settings = self.settings("fraud")
        self.prepare(settings)
        before = self.redis.info("memory")["used_memory"]
        result = self.throughput_on(settings, list(distinct_user_traffic(users, self.seed)))
        after = self.redis.info("memory")["used_memory"]
        by_kind = self.key_bytes(settings.redis_key_prefix)
        return {"users": users, "redis_bytes_per_user": (after - before) / users,
                "state_bytes_per_user": by_kind.get("u", 0) / users,
                "bytes_by_kind_per_user": {k: v / users for k, v in by_kind.items()},
                "worker_rss": result.rss, "events_per_s": result.rate}

    def throughput_on(self, settings: Settings, messages: list[Message]) -> Throughput:
        asyncio.run(preload(settings, messages))
        proc = self.start("fraud", settings)
        try:
            return self._poll_worker(proc, settings, [settings.topics.transactions], len(messages), 900)
        finally:
            proc.stop()

    def key_bytes(self, prefix: str, sample: int = 2000) -> dict[str, float]:
        """Redis bytes per key kind (``prefix:KIND:...``), from MEMORY USAGE on a sample of each kind."""
        counts: dict[str, int] = {}
        sizes: dict[str, list[int]] = {}
        for key in self.redis.scan_iter(match=f"{prefix}:*", count=1000):
            kind = key.decode()[len(prefix) + 1:].split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
            if len(sizes.setdefault(kind, [])) < sample:
                sizes[kind].append(self.redis.memory_usage(key, samples=0) or 0)
        return {k: statistics.mean(sizes[k]) * n for k, n in counts.items()}

    def soak(self, seconds: float, rate: float, users: int) -> dict:
        settings = self.settings("fraud")
        self.prepare(settings)
        proc = self.start("fraud", settings)
        samples: list[tuple[float, int]] = []
        try:
            wait_ready(proc, settings.web_port)

            async def run() -> int:
                stop = time.monotonic() + seconds
                sent = 0
                traffic = fraud_traffic(10 ** 9, self.seed, users=users, now=time.time() + 10 ** 9)
                while time.monotonic() < stop:
                    chunk = list(itertools.islice(traffic, int(rate)))
                    sent += await paced(settings, chunk, rate, {}, "event_id")
                    samples.append((seconds - (stop - time.monotonic()), rss_bytes(proc.pid)))
                return sent

            sent = asyncio.run(run())
        finally:
            proc.stop()
        third = len(samples) // 3
        start, middle, end = (statistics.median(r for _, r in part) for part in
                              (samples[:max(third, 1)], samples[third:2 * third] or samples, samples[-max(third, 1):]))
        return {"seconds": seconds, "rate": rate, "users": users, "sent": sent, "rss_start": start,
                "rss_middle": middle, "rss_end": end, "growth": end / start - 1,
                "rss_by_minute": rss_by_minute(samples)}


def half_capacity(runs: list[dict]) -> float:
    """Half the median measured throughput (events/s): the load a latency run offers by default.

    >>> half_capacity([{"rate": 1000.0}, {"rate": 3000.0}, {"rate": 2000.0}])
    1000.0
    >>> half_capacity([])
    0.0
    """
    return statistics.median(r["rate"] for r in runs) / 2 if runs else 0.0


def rss_by_minute(samples: list[tuple[float, int]]) -> list[int]:
    """Median RSS of each whole minute of (seconds, bytes) samples: the curve shows a plateau or a leak.

    >>> rss_by_minute([(1, 10), (30, 12), (59, 11), (61, 20), (90, 22)])
    [11, 21]
    """
    minutes: dict[int, list[int]] = {}
    for t, rss in samples:
        minutes.setdefault(int(t // 60), []).append(rss)
    return [int(statistics.median(minutes[m])) for m in sorted(minutes)]


# -- the whole run -----------------------------------------------------------------------------------
def run_pipeline(*, events: int = 20_000, naive_events: int = 3_000, runs: int = 3, rate: float = 0.0,
                 latency_s: float = 15.0, memory_users: int = 100_000, soak_s: float = 600.0,
                 soak_rate: float = 1000.0, seed: int = 42, only: tuple[str, ...] = SCENARIOS) -> dict:
    log_dir = Path(tempfile.mkdtemp(prefix="streamsense-bench-"))
    print(f"streamsense bench: logs in {log_dir}", file=sys.stderr)
    result: dict = {"throughput": {}, "latency": {}, "runs": runs, "events": events}
    with EmbeddedStack(log_dir=log_dir) as stack:
        bench = Bench(stack, log_dir, seed)
        traffic = {"ceiling": list(fraud_traffic(events, seed, labels=False)),
                   "emit": list(fraud_traffic(events, seed, labels=False)),
                   "naive": list(fraud_traffic(naive_events, seed, labels=False)),
                   "fraud": list(fraud_traffic(events, seed)),
                   "reco": list(reco_traffic(events, seed))}
        for run in range(runs):  # interleaved, so slow phases of a noisy machine hit every scenario
            for scenario in only:
                measured = [(scenario, bench.throughput(scenario, traffic[scenario]))]
                if scenario in ("fraud", "reco"):
                    measured.append((f"{scenario}-alone", bench.alone(scenario, traffic[scenario])))
                for name, t in measured:
                    result["throughput"].setdefault(name, []).append(dataclasses.asdict(t) | {"rate": t.rate})
                    print(f"  run {run + 1}/{runs} {name:12s} {t.rate:9,.0f} events/s  "
                          f"{t.cpu_per_1k:.3f} CPU s/1k", file=sys.stderr)
        for scenario in only:
            offered = rate or half_capacity(result["throughput"].get(scenario, []))
            if not offered:
                continue
            n = int(offered * latency_s)
            paced_traffic = (reco_traffic(n, seed + 1) if scenario == "reco"
                             else fraud_traffic(n, seed + 1, labels=scenario == "fraud"))
            result["latency"][scenario] = bench.latency(scenario, list(paced_traffic), offered).summary()
            print(f"  latency {scenario:8s} {result['latency'][scenario]}", file=sys.stderr)
        if memory_users:
            result["memory"] = bench.memory(memory_users)
            print(f"  memory {result['memory']}", file=sys.stderr)
        if soak_s:
            result["soak"] = bench.soak(soak_s, soak_rate, users=10_000)
            print(f"  soak {result['soak']}", file=sys.stderr)
    return result
