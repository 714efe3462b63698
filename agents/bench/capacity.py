"""Per-core costs for the capacity model in BENCHMARKS.md: what one event costs each part that
must scale, measured in this process against a Redis started for the run.

- worker: CPU seconds of the fraud processor per transaction (agents.bench.alone: batches of 500,
  no Faust, no Kafka; Faust's own cost per event is the pipeline benchmark's ceiling figure);
- Redis: CPU seconds the server spent per transaction (``INFO cpu`` before and after, on the
  node that holds the fraud path's slot), single node and Redis Cluster;
- the one learner: CPU seconds per example of each kind it learns (every decided transaction
  unlabelled, each label, each interaction), in this process on the learner's own models.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

from agents.bench.alone import run_alone
from agents.bench.io import fraud_traffic, reco_traffic
from agents.dev.embedded import RedisCluster, run_keys, start_redis
from agents.stores.keys import RedisKeys
from online_models.engine import FraudEngine
from online_models.reco_engine import RecoEngine
from schemas.records import Interaction, Transaction
from schemas.settings import SecretStr, Settings


@dataclass
class Costs:
    transactions: int
    worker_cpu_ms: float  # fraud processor, per transaction
    redis_cpu_ms: float  # single Redis, per transaction
    cluster_shard_cpu_ms: float  # the Redis Cluster node that holds {f}, per transaction
    learn_unlabelled_ms: float  # per decided transaction, on the learner
    learn_label_ms: float  # per label, on the learner
    learn_interaction_ms: float  # per interaction, on the learner


def server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def processor_costs(url: str, messages: list, settings: Settings, fraud_node: str | None = None
                    ) -> tuple[int, float, float]:
    """(transactions, worker CPU s, server CPU s of the node the fraud keys live on)."""
    node = redis.Redis.from_url(fraud_node or url)
    try:
        before = server_cpu(node)
        events, _, cpu = asyncio.run(run_alone("fraud", settings.replace(redis_url=SecretStr(url)), messages))
        return events, cpu, server_cpu(node) - before
    finally:
        node.close()


def learner_costs(n: int) -> tuple[float, float, float]:
    """CPU ms per unlabelled example, per label, per interaction, on fresh models."""
    engine = FraudEngine.from_settings(Settings())
    scored = [engine.score(Transaction(f"e{i}", 1_700_000_000.0 + 30 * i, f"u{i % 97}", f"m{i % 13}",
                                       5.0 + i % 200, "EUR", "FR", "web", f"d{i % 31}"), None, {}, decided_at=0.0)
              for i in range(n)]
    cpu = time.process_time()
    for s in scored:
        engine.learn_unlabelled(s.snapshot.features)
    unlabelled = (time.process_time() - cpu) / n
    cpu = time.process_time()
    for i, s in enumerate(scored):
        engine.learn_label(s.snapshot, i % 12 == 0, event_id=f"e{i}")
    label = (time.process_time() - cpu) / n
    reco = RecoEngine.from_settings(Settings())
    interactions = [Interaction(**json.loads(value)) for attr, _, value in reco_traffic(3 * n, seed=7)
                    if attr == "interactions"][:n]
    seen: dict[str, set[str]] = {}
    cpu = time.process_time()
    for it in interactions:
        reco.learn(it, seen.setdefault(it.user_id, set()))
        seen[it.user_id].add(it.item_id)
    interaction = (time.process_time() - cpu) / len(interactions)
    return unlabelled * 1000, label * 1000, interaction * 1000


def measure(transactions: int = 10_000, examples: int = 3_000) -> Costs:
    messages = [m for m in fraud_traffic(transactions, seed=11) if m[0] == "transactions"]
    with tempfile.TemporaryDirectory() as tmp:
        # A slow answer must not open the breaker here: a degraded decision skips Redis and would
        # make Redis look cheaper (the machine this runs on may be shared).
        settings = Settings(**run_keys(), app_id=f"capacity-{int(time.time())}", redis_slow_call_s=60.0,
                            data_dir=str(Path(tmp) / "data"))
        proc, url = start_redis(Path(tmp))
        try:
            events, worker_cpu, redis_cpu = processor_costs(url, messages, settings)
        finally:
            proc.stop()
        with RedisCluster(Path(tmp)) as cluster:
            with redis.RedisCluster.from_url(cluster.url) as client:
                node = client.get_node_from_key(RedisKeys.from_settings(settings).fraud)
                fraud_node = f"redis://{node.host}:{node.port}/0"
            _, _, shard_cpu = processor_costs(cluster.url, messages, settings, fraud_node)
    unlabelled, label, interaction = learner_costs(examples)
    per = 1000 / events
    return Costs(events, worker_cpu * per, redis_cpu * per, shard_cpu * per, unlabelled, label, interaction)


def print_capacity(costs: Costs) -> None:
    print(json.dumps(asdict(costs), indent=2))
