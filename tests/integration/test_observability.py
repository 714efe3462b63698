"""A running worker exposes /health, /ready and /metrics on 127.0.0.1 with live values."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from waiting import wait_until, wait_until_async

from schemas.settings import Settings

pytestmark = pytest.mark.integration

EXPECTED = {
    "streamsense_events", "streamsense_decisions", "streamsense_dead_letters", "streamsense_processing_seconds",
    "streamsense_end_to_end_seconds", "streamsense_recommendations", "streamsense_labels_learned",
    "streamsense_label_delay_seconds", "streamsense_model_rolling_rocauc", "streamsense_model_info",
    "streamsense_model_examples_learned", "process_resident_memory_bytes", "python_gc_collections",
    "streamsense_drift_signals", "streamsense_redis_errors", "streamsense_circuit_breaker_state",
    "streamsense_consumer_lag", "streamsense_ready",
}


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(port: int, timeout: float = 60.0) -> dict:
    def answer() -> dict | None:
        try:
            status, body = get(port, "/ready")
        except OSError:  # not listening yet
            return None
        return json.loads(body) if status == 200 else None

    return wait_until(answer, timeout, "the worker's /ready to answer 200")


def scrape(port: int) -> tuple[str, dict]:
    text = get(port, "/metrics")[1].decode()
    return text, {(s.name, tuple(sorted(s.labels.items()))): s.value
                  for fam in text_string_to_metric_families(text) for s in fam.samples}


def total(values: dict, name: str) -> float:
    return sum(v for (n, _), v in values.items() if n == name)


async def publish(settings: Settings) -> None:
    t, now = settings.topics, time.time()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for i in range(40):
            tx = {"event_id": f"o{i}", "ts": now - 100 + i, "user_id": f"u{i % 5}", "merchant_id": "m",
                  "amount": 10.0 + i, "currency": "EUR", "country": "FR", "channel": "web"}
            await producer.send(t.transactions, json.dumps(tx).encode(), key=tx["user_id"].encode())
            await producer.send(t.interactions, json.dumps({"event_id": f"i{i}", "ts": now, "user_id": f"u{i % 5}",
                                                            "item_id": f"it{i % 7}", "kind": "view"}).encode(),
                                key=f"u{i % 5}".encode())
        await producer.send(t.transactions, b"{not json")
        label = {"event_id": "o3", "is_fraud": True, "ts": now}
        await producer.flush()  # the label after the decisions: it joins its snapshot (a chargeback learned)
        await wait_until_async(lambda: total(scrape(settings.web_port)[1], "streamsense_decisions_total") == 40, 30,
                               "40 decisions")
        await producer.send(t.fraud_labels, json.dumps(label).encode(), key=b"o3")
        await producer.send(t.reco_requests, json.dumps({"request_id": "q1", "user_id": "u1", "k": 3,
                                                         "ts": now}).encode(), key=b"u1")
        await producer.flush()
    finally:
        await producer.stop()


def listening_addresses(pid: int, port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp) of the sockets listening on ``port`` in ``pid``'s namespace."""
    rows = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    return {local.split(":")[0] for local, state in ((r.split()[1], r.split()[3]) for r in rows)
            if state == "0A" and int(local.split(":")[1], 16) == port}


def test_health_ready_and_live_metrics(settings: Settings, worker) -> None:
    port = settings.web_port
    state = wait_ready(port)
    assert listening_addresses(worker.pid, port) == {"0100007F"}  # 127.0.0.1 only, not 0.0.0.0
    assert state == {"ready": True, "partitions_assigned": True, "redis": True, "models_loaded": True, "warnings": []}
    assert get(port, "/health") == (200, b'{"status":"ok"}')

    asyncio.run(publish(settings))
    # Settled: the recommendation answered, each transactions partition's lag sampled, and every
    # sampled lag at zero (sampled every 2 s; an off-by-one there would never reach zero).
    partitions = {str(p) for p in range(settings.partitions)}

    def settled() -> bool:
        values = scrape(port)[1]
        lags = {labels: v for (n, labels), v in values.items() if n == "streamsense_consumer_lag"}
        sampled = {dict(ls)["partition"] for ls in lags if dict(ls)["topic"] == settings.topics.transactions}
        return (total(values, "streamsense_recommendations_total") == 1 and sampled == partitions
                and all(v == 0 for v in lags.values()))

    wait_until(settled, 60, "the request answered and every partition's lag sampled at zero")
    text, values = scrape(port)
    assert EXPECTED <= {fam.name for fam in text_string_to_metric_families(text)}
    assert total(values, "streamsense_decisions_total") == 40
    assert values[("streamsense_dead_letters_total", (("stage", "validate"),))] == 1
    assert values[("streamsense_labels_learned_total", (("source", "chargeback"),))] == 1
    assert sum(v for (n, _), v in values.items() if n == "streamsense_recommendations_total") == 1
    assert values[("streamsense_ready", ())] == 1.0
    breaker = {dict(labels)["streamsense_circuit_breaker_state"]: v for (n, labels), v in values.items()
               if n == "streamsense_circuit_breaker_state"}
    assert breaker == {"closed": 1.0, "half_open": 0.0, "open": 0.0}
    info = [dict(labels) for (n, labels), v in values.items() if n == "streamsense_model_info" and v == 1.0]
    assert {i["model"] for i in info} == {"lr+hst+rules", "biased-mf"} and all(i["version"] == "1" for i in info)
    assert "u1" not in text and "o3" not in text  # no user or event ids in metric labels
