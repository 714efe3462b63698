"""`streamsense bench profile`: where a fraud worker's CPU goes while it drains a backlog.

First the worker's CPU while idle (started, no traffic, nobody scraping it): work that costs per
second, not per event (fetch loops, timers), which a slow worker charges to every event. Then
py-spy (the ``dev`` extra) samples the running worker process (all its threads, on-CPU samples
only) once it has decided its first events, for ``seconds``; the raw stacks go to a file and the
summary sorts every sample into one part of the worker (first match wins, in the order of
``PARTS``), beside the functions with the most samples of their own.
"""

from __future__ import annotations

import asyncio
import collections
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from agents.bench.io import cpu_seconds, fraud_traffic, preload, processed
from agents.bench.pipeline import Bench
from agents.dev.embedded import EmbeddedStack
from agents.dev.stack import wait_ready

PARTS = (  # (part, frames any of which puts a sample in it); first match wins
    ("Faust's consumer thread (fetch requests, record decoding)", ("WorkerThread.run",)),
    ("timers (expiring unlabelled decisions and parked labels, HTTP republish)", ("resilient.<locals>.run",)),
    ("learner agent (River learn_one)", ("learn_fraud_model",)),
    ("label agent", ("learn_labels",)),
    ("scoring: FraudEngine.score (features, classifier, Half-Space Trees, drift)", ("FraudEngine.score",)),
    ("scoring: Redis client (load, commit)", ("redis/",)),
    ("scoring: the rest of the processor (decode, plan, records)", ("TransactionPath.on_transactions",)),
    ("outputs (to_emits, bulk produce)", ("to_emits", "emit_all")),
    ("Faust stream machinery, main thread (take_events, acks)",
     ("Stream.", "Conductor", "faust/transport", "Agent._execute_actor")),
    ("aiokafka I/O, main thread (producer, connections)", ("aiokafka/",)),
    ("web server, metrics", ("aiohttp", "prometheus")),
)
LOOP = "the event loop itself (uvloop, in C: run_forever's own samples)"
STARTUP = ("_find_and_load", "build_worker", "use_event_loop")  # a sample of the worker still starting


def parse(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """py-spy's raw format: ``frame;frame;... count`` per line."""
    out = []
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if stack:
            out.append((stack.split(";"), int(count)))
    return out


def parts(stacks: list[tuple[list[str], int]]) -> dict[str, float]:
    """Share of the samples in each part of the worker, largest first.

    >>> shares = parts([(["run (mode/worker.py:1)", "WorkerThread.run (mode/threads.py:62)"], 3),
    ...                 (["Worker.execute_from_commandline (mode/worker.py:9)"], 1)])
    >>> [(name.split(" (")[0], share) for name, share in shares.items()]
    [("Faust's consumer thread", 0.75), ('the event loop itself', 0.25)]
    """
    counts: collections.Counter[str] = collections.Counter()
    for frames, n in stacks:
        joined = ";".join(frames)
        part = next((name for name, keys in PARTS if any(k in joined for k in keys)), None)
        if part is None:
            part = LOOP if frames[-1].startswith("Worker.execute_from_commandline") else "other (mode services, waits)"
        counts[part] += n
    total = sum(counts.values()) or 1
    return {name: n / total for name, n in counts.most_common()}


def top_frames(stacks: list[tuple[list[str], int]], n: int = 15) -> list[tuple[str, float]]:
    """The functions with the most samples of their own (the leaf frame), with their share.

    >>> top_frames(parse(["main (/x/agents/cli.py:3);digest (hmac.py:9) 3",
    ...                   "main (/x/agents/cli.py:3);_walk_score (/v/site-packages/river/anomaly/hst.py:7) 1"]))
    [('digest (hmac.py)', 0.75), ('_walk_score (river/anomaly/hst.py)', 0.25)]
    """
    counts: collections.Counter[str] = collections.Counter()
    for frames, k in stacks:
        counts[re.sub(r" \((?:.*/(?:site-packages|wt-[^/]+|streamsense)/)?(.*?):\d+\)$", r" (\1)", frames[-1])] += k
    total = sum(counts.values()) or 1
    return [(name, k / total) for name, k in counts.most_common(n)]


def idle_cpu(pid: int, seconds: float) -> float:
    """CPU milliseconds per second of wall time that process ``pid`` spends over ``seconds``."""
    cpu, wall = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu) / (time.monotonic() - wall) * 1000


def run_profile(*, events: int = 20_000, seconds: float = 30.0, rate: int = 200, seed: int = 42,
                idle_s: float = 15.0) -> dict:
    log_dir = Path(tempfile.mkdtemp(prefix="streamsense-profile-"))
    raw = log_dir / "worker.pyspy.txt"
    print(f"streamsense bench profile: logs and raw stacks in {log_dir}", file=sys.stderr)
    with EmbeddedStack(log_dir=log_dir) as stack:
        bench = Bench(stack, log_dir, seed)
        settings = bench.settings("fraud")
        bench.prepare(settings)
        proc = bench.start("fraud", settings)
        try:
            wait_ready(proc, settings.web_port)
            time.sleep(5)  # past the first rebalance's settling
            idle = idle_cpu(proc.pid, idle_s)
            asyncio.run(preload(settings, list(fraud_traffic(events, seed))))
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.alive():  # sampled once it decides, not while starting
                try:
                    if processed(settings.web_port, [settings.topics.transactions]):
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            subprocess.run([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(proc.pid), "-d",
                            str(int(seconds)), "-r", str(rate), "--format", "raw", "-o", str(raw), "--nonblocking"],
                           check=True)
        finally:
            proc.stop()
    stacks = [(f, n) for f, n in parse(raw.read_text().splitlines()) if not any(s in ";".join(f) for s in STARTUP)]
    return {"idle_cpu_ms_per_s": idle, "raw": str(raw), "samples": sum(n for _, n in stacks), "parts": parts(stacks),
            "top_frames": top_frames(stacks)}


def print_profile(result: dict) -> None:
    print(f"fraud worker idle (no traffic, not scraped): {result['idle_cpu_ms_per_s']:.0f} CPU ms per second")
    print(f"fraud worker draining a backlog: {result['samples']:,} on-CPU samples (py-spy), raw stacks in "
          f"{result['raw']}")
    print("| part of the worker | share of its CPU samples |\n|---|---|")
    for name, share in result["parts"].items():
        print(f"| {name} | {share:.1%} |")
    print("\n| function (own samples) | share |\n|---|---|")
    for name, share in result["top_frames"]:
        print(f"| `{name}` | {share:.1%} |")
