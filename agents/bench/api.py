"""`streamsense bench api`: the HTTP API at a fixed offered request rate on loopback, against one
worker on the embedded broker and a real Redis.

Side by side in one run, each at ``rate`` requests/s for ``seconds`` (after a warm-up that is not
counted): ``GET /health`` (the web server's own floor), ``POST /v1/score`` (fresh transactions of
simulated shoppers; the decision is committed to Redis and handed to the producer before the answer)
and ``GET /v1/recommendations/{user}`` (users the model learned from a preloaded interaction
stream). Requests are sent open-loop on a fixed schedule, so a slow answer does not slow the
offered load; latency is from sending the request to reading the whole answer. Last, the same
single-event decisions made in the benchmark's own process straight against Redis: the floor.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import aiohttp

from agents.api.auth import new_api_key
from agents.bench.io import fraud_traffic, preload, processed, reco_traffic
from agents.bench.pipeline import Bench
from agents.clients import redis_client
from agents.dev.embedded import EmbeddedStack
from agents.dev.stack import wait_ready
from agents.fraud_processor import FraudProcessor
from agents.sim.pacing import Pacer
from schemas.settings import Settings

SCORE_P99_TARGET_MS = 15.0
Request = tuple[str, str, bytes | None]  # method, path, body


async def offered(base: str, token: str, requests: Iterable[Request], rate: float) -> list[tuple[int, float]]:
    """(status, latency ms) of each request, sent at ``rate``/s whether or not earlier ones answered."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(base, headers=headers, connector=aiohttp.TCPConnector(limit=256)) as session:
        async def one(method: str, path: str, body: bytes | None) -> tuple[int, float]:
            started = time.perf_counter()
            async with session.request(method, path, data=body) as answer:
                await answer.read()
            return answer.status, (time.perf_counter() - started) * 1000.0

        pacer, tasks = Pacer(rate), []
        for method, path, body in requests:
            tasks.append(asyncio.create_task(one(method, path, body)))
            await pacer.sent_one()
        return await asyncio.gather(*tasks)


def summary(results: list[tuple[int | str, float]], rate: float) -> dict:
    xs = sorted(ms for _, ms in results)
    return {"offered": rate, "requests": len(xs), "p50": statistics.median(xs),
            "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))], "max": xs[-1],
            "statuses": dict(Counter(str(s) for s, _ in results))}


def score_requests(n: int, seed: int) -> Iterator[Request]:
    for _, _, value in fraud_traffic(n, seed, labels=False):
        yield "POST", "/v1/score", value


def reco_requests(users: list[str], n: int) -> Iterator[Request]:
    for user in itertools.islice(itertools.cycle(users), n):
        yield "GET", f"/v1/recommendations/{user}?k=10", None


async def decide_alone(settings: Settings, n: int, seed: int) -> list[tuple[str, float]]:
    """The same single-event decisions in this process, straight to Redis (no HTTP, no Kafka, no
    worker event loop): the floor under ``POST /v1/score``."""
    redis = redis_client(settings)
    processor = FraudProcessor.on_redis(redis, settings).transactions
    timings = []
    try:
        for _, _, raw in fraud_traffic(n, seed, labels=False):
            started = time.perf_counter()
            await processor.on_api_transactions([(raw, processor.decode(raw, time.time()), None)], time.time())
            timings.append(("decided", (time.perf_counter() - started) * 1000.0))
    finally:
        await redis.aclose()
    return timings[n // 10:]  # after a warm-up


def run_api_bench(*, rate: float = 200.0, seconds: float = 30.0, warmup_s: float = 3.0, interactions: int = 20_000,
                  seed: int = 42) -> dict:
    log_dir = Path(tempfile.mkdtemp(prefix="streamsense-bench-api-"))
    print(f"streamsense bench api: logs in {log_dir}", file=sys.stderr)
    token, entry = new_api_key("bench", ["score", "recommend"])
    n, warm = int(rate * seconds), int(rate * warmup_s)
    with EmbeddedStack(log_dir=log_dir) as stack:
        bench = Bench(stack, log_dir, seed)
        settings = bench.settings("api").replace(api_keys=entry, api_rate_per_s=100 * rate, api_burst=int(100 * rate))
        bench.prepare(settings)
        learned = list(reco_traffic(interactions, seed))
        users = sorted({json.loads(v)["user_id"] for attr, _, v in learned if attr == "interactions"})
        counts = asyncio.run(preload(settings, learned))
        proc = bench.start("reco", settings)
        try:
            wait_ready(proc, settings.web_port)
            inputs = [settings.topics.interactions, settings.topics.reco_requests]
            deadline = time.monotonic() + 300
            while processed(settings.web_port, inputs) < sum(counts.values()) and time.monotonic() < deadline:
                time.sleep(0.5)  # the model learns the interactions before requests ask it
            base = f"http://127.0.0.1:{settings.web_port}"
            plans = {"GET /health": lambda k: itertools.repeat(("GET", "/health", None), k),
                     "POST /v1/score": lambda k: score_requests(k, seed + k),
                     "GET /v1/recommendations": lambda k: reco_requests(users[k % len(users):] + users, k)}
            result = {"rate": rate, "seconds": seconds, "users_learned": len(users), "endpoints": {}}
            for name, plan in plans.items():
                asyncio.run(offered(base, token, plan(warm), rate))
                result["endpoints"][name] = summary(asyncio.run(offered(base, token, plan(n), rate)), rate)
                print(f"  {name:26s} {result['endpoints'][name]}", file=sys.stderr)
        finally:
            proc.stop()
        alone = settings.replace(app_id=settings.app_id + "-alone")
        result["endpoints"]["decide alone (no HTTP/Kafka)"] = summary(asyncio.run(decide_alone(alone, 2000, seed)), 0)
    return result


def print_api(result: dict) -> None:
    print(f"HTTP API on loopback, one worker: {result['rate']:g} requests/s offered for {result['seconds']:g} s "
          f"per endpoint (open loop), {result['users_learned']} users learned")
    print("| endpoint                     | requests | p50 ms | p99 ms | max ms | answers |")
    print("|------------------------------|----------|--------|--------|--------|---------|")
    for name, e in result["endpoints"].items():
        statuses = ", ".join(f"{s}: {c}" for s, c in sorted(e["statuses"].items()))
        figures = f"{e['requests']:8,d} | {e['p50']:6.2f} | {e['p99']:6.2f} | {e['max']:6.1f}"
        print(f"| {name:28s} | {figures} | {statuses} |")
    score = result["endpoints"]["POST /v1/score"]
    floor = result["endpoints"]["GET /health"]
    verdict = "met" if score["p99"] <= SCORE_P99_TARGET_MS else "MISSED"
    print(f"score p99 {score['p99']:.2f} ms (target <= {SCORE_P99_TARGET_MS:g} ms: {verdict}); "
          f"{score['p99'] / floor['p99']:.1f}x the web server's own p99")
