"""`streamsense dev`: the embedded default. Broker + Redis + worker(s) + simulator + live figures.

Every child process is started in its own session and stopped by its own pid, on Ctrl-C too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from agents.api.auth import new_api_key
from agents.dev.dashboard import Figures, follow, summary
from agents.dev.embedded import EmbeddedStack, ManagedProcess, create_topics, free_port
from agents.dev.probes import ready
from agents.sim.reco_traffic import RecoTrafficSimulator
from agents.sim.simulator import Truth, publish, publish_reco, simulation_start
from agents.sim.traffic import SIMULATED_LABEL_HORIZON_S, TrafficSimulator
from schemas.settings import SecretStr, Settings

# Simulated time runs faster than the wall clock (about 2,000x at 300 transactions/s); it starts
# this far in the past so event times stay behind the wall clock and inside max_past_s for a
# demo of about 20 minutes; the simulator stops when its clock reaches the wall clock.
SIMULATION_SPAN_S = 28 * 86400.0
# Shoppers and card testers change behaviour after two simulated days (a drift mid-run).
DRIFT_AFTER_S = 2 * 86400.0
# Interactions and recommendation requests per transaction sent.
RECO_SHARE = 0.5


def all_topics(settings: Settings) -> list[str]:
    return [getattr(settings.topics, f.name) for f in dataclasses.fields(settings.topics)]


def start_worker(settings: Settings, index: int, log_dir: Path, port: int | None = None
                 ) -> tuple[ManagedProcess, int]:
    port = port or free_port()
    env = {**os.environ, **settings.replace(web_port=port, data_dir=str(log_dir / f"worker-{index}-data")).to_env()}
    proc = ManagedProcess(f"worker-{index}", [sys.executable, "-m", "agents", "worker", "--loglevel", "warning"],
                          env=env, log_dir=log_dir)
    return proc, port


def wait_ready(proc: ManagedProcess, port: int, timeout: float = 60.0) -> None:
    """Traffic starts once the worker has joined its group: a backlog would be scored by a model
    that has learned nothing yet and then caught up in a burst, which is not what a running
    system looks like."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.alive():
        if ready(port, timeout=1.0):
            return
        time.sleep(0.3)
    print(f"streamsense dev: {proc.name} not ready after {timeout:.0f} s; see {proc.log_path}", file=sys.stderr)


async def live(settings: Settings, *, rate: float, seed: int, duration: float | None,
               show: bool = True) -> Figures:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration:
        loop.call_later(duration, stop.set)
    truth, figures = Truth(), Figures()
    start = simulation_start(SIMULATION_SPAN_S)
    sim = TrafficSimulator(seed=seed, start_ts=start, drift_at=DRIFT_AFTER_S)
    shoppers = RecoTrafficSimulator(seed=seed, start_ts=start)
    tasks = [publish(settings, sim, truth, rate=rate, stop=stop, seed=seed),
             publish_reco(settings, shoppers, truth, rate=rate * RECO_SHARE, stop=stop)]
    await asyncio.gather(*tasks, *([follow(settings, truth, figures, stop)] if show else []))
    return figures


def run_simulate(settings: Settings, *, rate: float, seed: int, duration: float | None) -> int:
    """Only the simulators, against the configured Kafka (the compose file runs this next to the workers)."""
    asyncio.run(create_topics(settings.bootstrap_servers, all_topics(settings), settings.partitions))
    asyncio.run(live(settings, rate=rate, seed=seed, duration=duration, show=False))
    return 0


def run_dev(settings: Settings, *, rate: float = 300.0, seed: int = 42, duration: float | None = None,
            workers: int = 1) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="streamsense-dev-"))
    print(f"streamsense dev: logs in {log_dir}", file=sys.stderr)
    with EmbeddedStack(log_dir=log_dir) as stack:
        # Simulated time runs ~2,000x faster: models are published every second, not every ten.
        token, api_key = new_api_key("dev", ["score", "recommend", "admin"])  # a key for this run only
        settings = settings.replace(bootstrap_servers=stack.bootstrap, redis_url=SecretStr(stack.redis_url),
                                    label_horizon_s=SIMULATED_LABEL_HORIZON_S, checkpoint_interval_s=1.0,
                                    api_keys=",".join(filter(None, (settings.api_keys, api_key))))
        asyncio.run(create_topics(settings.bootstrap_servers, all_topics(settings), settings.partitions))
        started = [start_worker(settings, i, log_dir) for i in range(workers)]
        procs = [proc for proc, _ in started]
        print("streamsense dev: waiting for the worker(s) to join their group...", file=sys.stderr)
        for proc, port in started:
            wait_ready(proc, port)
        print(f"streamsense dev: HTTP API on http://127.0.0.1:{started[0][1]}/v1/ with this run's key:\n"
              f"  curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{started[0][1]}/v1/models", file=sys.stderr)
        try:
            figures = asyncio.run(live(settings, rate=rate, seed=seed, duration=duration))
        finally:
            for proc in procs:
                proc.stop()
    print(json.dumps(summary(figures), indent=2, default=str))
    return 0
