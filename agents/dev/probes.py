"""Reading a running worker's own HTTP endpoints: its metrics and its readiness. Used by `streamsense
dev`, the benchmarks and the tests alike."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families


def metric(port: int, name: str, where: Callable[[dict[str, str]], bool] = lambda labels: True,
           **labels: str) -> float:
    """The sum of the worker's samples named ``name`` whose labels include ``labels`` and pass ``where``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and labels.items() <= s.labels.items() and where(s.labels))


def ready(port: int, timeout: float = 2.0) -> bool:
    """Whether /ready answers 200 (partitions assigned, Redis answers, models loaded)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def ready_state(port: int, timeout: float = 5.0) -> dict:
    """The body of /ready: each check, and the warnings about Redis (200 or 503 alike)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:  # 503: not ready, the same body
        return json.load(exc)
