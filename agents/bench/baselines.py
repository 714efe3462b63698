"""The two ways of building this on Faust that streamsense is measured against (``streamsense bench pipeline``).

- ``ceiling``: a bare Faust agent that only decodes each event: what Faust itself allows.
- ``emit``: the second ceiling: a bare Faust agent that decodes each event and writes one record
  per event the idiomatic way (``await topic.send``): what Faust's own way of producing one
  output costs, with no model, state or checks at all.
- ``naive``: the fraud path written the way Faust's and River's documentation suggest: one event
  at a time, Faust's JSON serializer, one awaited Redis call per state read and per feature
  update, the same features and models (scored, and the anomaly model learning, inline), one
  awaited ``topic.send`` per decision.

Each runs as its own process (``python -m agents.bench.baselines KIND``), configured by the
``BENCH_*`` variables below plus the usual ``STREAMSENSE_*`` settings, and writes a JSON report
(wall and CPU time at its first and last event, latencies) once it has seen ``BENCH_EXPECT``
events. Never used by the worker.
"""

from __future__ import annotations

import json
import os
import sys
import time

import faust

from agents.worker import faust_worker, use_event_loop
from schemas.settings import Settings
from streams.app import make_app


class Report:
    """Times at the first and the last expected event, written once to ``path``."""

    def __init__(self, path: str, expect: int) -> None:
        self.path, self.expect = path, expect
        self.count = 0
        self.first = self.cpu_first = 0.0
        self.latencies: list[float] = []

    def seen(self, produced_at: float | None, key: bytes | None) -> None:
        now = time.time()
        if key == b"probe":  # the harness probes until the agent consumes, then offers its load
            open(self.path + ".started", "w").close()
            return
        if self.count == 0:
            self.first, self.cpu_first = now, time.process_time()
        self.count += 1
        if produced_at:
            self.latencies.append(now - produced_at)
        if self.count == self.expect:
            doc = {"n": self.count, "first": self.first, "last": now, "cpu": time.process_time() - self.cpu_first,
                   "latencies": self.latencies}
            with open(self.path + ".tmp", "w") as out:
                json.dump(doc, out)
            os.replace(self.path + ".tmp", self.path)


def ceiling_app(settings: Settings, report: Report) -> faust.App:
    topology = make_app(settings)

    @topology.app.agent(topology.transactions, name="decode-only")
    async def decode_only(stream: faust.StreamT) -> None:
        async for event in stream.events():
            json.loads(event.value)
            report.seen(event.message.timestamp, event.message.key)

    return topology.app


def emit_app(settings: Settings, report: Report) -> faust.App:
    topology = make_app(settings)
    decisions = topology.app.topic(settings.topics.fraud_decisions, key_type=bytes, value_type=bytes,
                                   key_serializer="raw", value_serializer="raw")

    @topology.app.agent(topology.transactions, name="decode-and-send")
    async def decode_and_send(stream: faust.StreamT) -> None:
        async for event in stream.events():
            doc = json.loads(event.value)
            await decisions.send(key=event.message.key, value=json.dumps(doc).encode())
            report.seen(event.message.timestamp, event.message.key)

    return topology.app


def naive_app(settings: Settings, report: Report) -> faust.App:
    from agents.clients import redis_client
    from online_models.engine import FraudEngine
    from schemas.records import Transaction
    from streams.fraud_features import UserState

    topology = make_app(settings)
    app = topology.app
    transactions = app.topic(settings.topics.transactions, value_serializer="json")
    decisions = app.topic(settings.topics.fraud_decisions, value_serializer="json")
    engine = FraudEngine.from_settings(settings)
    redis = redis_client(settings)

    @app.agent(transactions, name="naive-score")
    async def naive_score(stream: faust.StreamT) -> None:
        async for event in stream.events():
            tx = Transaction(**event.value)
            user_key, merchant_key = f"naive:u:{tx.user_id}", f"naive:m:{tx.merchant_id}"
            blob = await redis.get(user_key)
            merchant = {k.decode(): float(v) for k, v in (await redis.hgetall(merchant_key)).items()}
            state = UserState.from_bytes(blob) if blob else None
            scored = engine.score(tx, state, merchant, decided_at=time.time())
            engine.learn_unlabelled(scored.snapshot.features)
            await redis.set(user_key, scored.user_state.to_bytes())
            for name, value in scored.snapshot.features.items():  # the feature store: one field per feature
                await redis.hset(f"naive:f:{tx.user_id}", name, value)
            for name, delta in scored.merchant_update.increments.items():
                await redis.hincrbyfloat(merchant_key, name, delta)
            await decisions.send(key=tx.event_id, value=scored.decision.to_dict())
            report.seen(event.message.timestamp, event.message.key)

    return app


APPS = {"ceiling": ceiling_app, "emit": emit_app, "naive": naive_app}


def main(kind: str) -> None:
    settings = Settings.from_env()
    use_event_loop(settings.event_loop)  # like for like: the same loop as the worker measured beside it
    report = Report(os.environ["BENCH_REPORT"], int(os.environ["BENCH_EXPECT"]))
    app = APPS[kind](settings, report)
    faust_worker(app, "warning").execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1])
