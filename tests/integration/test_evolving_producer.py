"""A producer after a routine upgrade, against a running worker: transactions with an added optional
field and with a channel not seen before, interactions with a new kind. Lenient (the default): all
decided or taken, the new field counted per topic, the new channel named in each decision's
reasons, the new kind counted and not learned. Strict (STREAMSENSE_STRICT_INPUT=true): dead letters."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import jsonschema
import pytest
from aiokafka import AIOKafkaProducer
from test_fraud_path import publish_and_collect

from agents.commands.topics import create_topics
from agents.dev.embedded import ManagedProcess
from agents.dev.probes import metric
from schemas.contracts import load_schema
from schemas.settings import Settings

pytestmark = pytest.mark.integration
EACH = 50
KINDS = 20


def upgraded_traffic(now: float) -> list[tuple[str, bytes, bytes]]:
    """(topic attribute, key, value): 50 transactions with an added field, 50 with a new channel, 20
    interactions of a new kind."""
    out = []
    for i in range(2 * EACH):
        tx = {"event_id": f"up-{i}", "ts": now - 60, "user_id": f"u{i % 9}", "merchant_id": "m1", "amount": 15.0 + i,
              "currency": "EUR", "country": "FR", "channel": "web"}
        tx.update({"loyalty_tier": "gold"} if i < EACH else {"channel": "voice"})
        out.append(("transactions", tx["user_id"].encode(), json.dumps(tx).encode()))
    for i in range(KINDS):
        it = {"event_id": f"wish-{i}", "ts": now - 60, "user_id": f"u{i % 9}", "item_id": "item-1", "kind": "wishlist"}
        out.append(("interactions", it["user_id"].encode(), json.dumps(it).encode()))
    return out


async def send_and_read(settings: Settings, messages: list[tuple[str, bytes, bytes]], expected: int
                        ) -> tuple[list[dict], list[dict]]:
    """Interactions first, then the transactions; every decision and dead letter, ``expected`` of them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for _, key, value in (m for m in messages if m[0] == "interactions"):
            await producer.send(settings.topics.interactions, value, key=key)
    finally:
        await producer.stop()
    return await publish_and_collect(settings, [(k, v) for attr, k, v in messages if attr == "transactions"],
                                     expected, timeout=120.0)


def wait_for_metric(port: int, name: str, expected: float, timeout: float = 30.0, **labels: str) -> float:
    deadline = time.monotonic() + timeout
    while (value := metric(port, name, **labels)) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return value


def test_an_added_field_and_new_categorical_values_are_decided_and_counted(settings: Settings, worker) -> None:
    decisions, dead = asyncio.run(send_and_read(settings, upgraded_traffic(time.time()), 2 * EACH))
    assert dead == [] and sorted(d["event_id"] for d in decisions) == sorted(f"up-{i}" for i in range(2 * EACH))
    for d in decisions:
        jsonschema.validate(d, load_schema("fraud_decision.schema.json"))
        named = [r for r in d["reasons"] if r["kind"] == "input"]
        expected = [{"name": "unknown_channel", "kind": "input", "value": "voice"}]
        assert named == (expected if int(d["event_id"].split("-")[1]) >= EACH else [])
    port, t = settings.web_port, settings.topics
    assert wait_for_metric(port, "streamsense_unknown_fields_total", EACH, topic="transactions") == EACH
    assert wait_for_metric(port, "streamsense_unknown_values_total", EACH, topic="transactions",
                           field="channel") == EACH
    assert wait_for_metric(port, "streamsense_unknown_values_total", KINDS, topic="interactions", field="kind") == KINDS
    assert wait_for_metric(port, "streamsense_events_total", KINDS, topic=t.interactions,
                           outcome="unknown_kind") == KINDS
    assert metric(port, "streamsense_events_total", topic=t.interactions, outcome="learned") == 0  # not learned
    assert metric(port, "streamsense_dead_letters_total") == 0


def test_strict_mode_dead_letters_added_fields_and_unknown_values(settings: Settings, tmp_path) -> None:
    settings = settings.replace(strict_input=True)
    asyncio.run(create_topics(settings))
    proc = ManagedProcess("worker", [sys.executable, "-m", "agents", "worker", "--loglevel", "warning"],
                          env={**os.environ, **settings.to_env()}, log_dir=tmp_path)
    try:
        decisions, dead = asyncio.run(send_and_read(settings, upgraded_traffic(time.time()), 2 * EACH + KINDS))
    finally:
        proc.stop()
    assert decisions == []
    codes = sorted((d["source_topic"], d["error_code"], d["field"]) for d in dead)
    t = settings.topics
    assert codes == sorted([(t.transactions, "unknown_field", "loyalty_tier")] * EACH
                           + [(t.transactions, "unknown_value", "channel")] * EACH
                           + [(t.interactions, "unknown_value", "kind")] * KINDS)
