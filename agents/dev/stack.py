"""`streamsense dev`: the embedded default. Broker + Redis + worker(s) + simulator + live figures.

Every child process is started in its own session and stopped by its own pid, on Ctrl-C too.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from agents.api.auth import new_api_key
from agents.commands.topics import create_topics
from agents.dev.dashboard import Figures, follow, summary
from agents.dev.embedded import EmbeddedStack, ManagedProcess, free_port
from agents.dev.probes import ready
from agents.sim.simulator import Truth, stop_event, traffic
from agents.sim.traffic import SIMULATED_LABEL_HORIZON_S
from schemas.settings import SecretStr, Settings


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


async def live(settings: Settings, *, rate: float, seed: int, duration: float | None) -> Figures:
    stop, truth, figures = stop_event(duration), Truth(), Figures()
    await asyncio.gather(traffic(settings, truth, stop, rate=rate, seed=seed), follow(settings, truth, figures, stop))
    return figures


def run_dev(settings: Settings, *, rate: float = 300.0, seed: int = 42, duration: float | None = None,
            workers: int = 1) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="streamsense-dev-"))
    print(f"streamsense dev: logs in {log_dir}", file=sys.stderr)
    with EmbeddedStack(log_dir=log_dir) as stack:
        # Simulated time runs ~2,000x faster: models are published every second, not every ten.
        token, api_key = new_api_key("dev", ["score", "recommend", "admin"])  # a key for this run only
        # dev_mode: the one command that accepts the public development keys (loopback only, ends with it).
        settings = settings.replace(bootstrap_servers=stack.bootstrap, redis_url=SecretStr(stack.redis_url),
                                    label_horizon_s=SIMULATED_LABEL_HORIZON_S, checkpoint_interval_s=1.0, dev_mode=True,
                                    api_keys=",".join(filter(None, (settings.api_keys, api_key))))
        asyncio.run(create_topics(settings))
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
