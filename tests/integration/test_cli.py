"""The topics, produce and tail commands as a user runs them, against the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from agents import clients
from agents.commands.topics import all_topics, create_topics, internal_topics
from schemas.settings import Settings

pytestmark = pytest.mark.integration


def streamsense(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agents", *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120, check=True)


def test_produce_jsonl_and_csv_then_tail_them_back(broker: str, tmp_path) -> None:
    topic = f"transactions-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topics(Settings(bootstrap_servers=broker, partitions=2), [topic]))
    env = {"STREAMSENSE_BOOTSTRAP_SERVERS": broker, "STREAMSENSE_TOPIC_TRANSACTIONS": topic}
    jsonl = tmp_path / "tx.jsonl"
    jsonl.write_text('{"event_id": "j1", "user_id": "u1", "amount": 5}\n\n{not json}\n')
    csv = tmp_path / "tx.csv"
    csv.write_text("event_id,user_id,amount,currency\nc1,u2,12.5,EUR\n")

    produced = [streamsense("produce", str(path), "--topic", topic, env=env) for path in (jsonl, csv)]
    assert [p.stderr.strip().splitlines()[-1] for p in produced] == [f"sent 2 messages to {topic}",
                                                                     f"sent 1 messages to {topic}"]

    tailed = streamsense("tail", topic, "--from-beginning", "--limit", "3", "--idle-timeout", "20", env=env)
    lines = sorted(tailed.stdout.splitlines())
    assert lines[-1] == "{not json}"  # sent as is: the worker, not the producer, dead-letters it
    assert [json.loads(line)["event_id"] for line in lines[:-1]] == ["c1", "j1"]
    assert json.loads(lines[0]) == {"event_id": "c1", "user_id": "u2", "amount": 12.5, "currency": "EUR"}


def test_simulate_runs_without_the_development_stack(settings: Settings) -> None:
    # As in the worker image, where agents.dev and agents.bench are not installed (docker/Dockerfile).
    hide = "import sys; sys.modules['agents.dev'] = sys.modules['agents.bench'] = None; from agents.cli import main; "
    subprocess.run([sys.executable, "-c", hide + "main(['simulate', '--rate', '50', '--duration', '3'])"],
                   env={**os.environ, **settings.to_env()}, capture_output=True, text=True, timeout=120, check=True)
    tailed = streamsense("tail", settings.topics.transactions, "--from-beginning", "--limit", "20",
                         "--idle-timeout", "10", env=settings.to_env())
    assert len(tailed.stdout.splitlines()) == 20  # it created the topics and published to them


def test_produce_types_csv_columns_by_the_topics_schema_and_keys_every_topic(broker: str, tmp_path) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = {name: f"{name}-{suffix}" for name in ("transactions", "fraud_labels", "interactions", "reco_requests")}
    asyncio.run(create_topics(Settings(bootstrap_servers=broker, partitions=2), list(topics.values())))
    env = {"STREAMSENSE_BOOTSTRAP_SERVERS": broker, **{f"STREAMSENSE_TOPIC_{n.upper()}": t for n, t in topics.items()}}
    rows = {"transactions": "event_id,ts,user_id,merchant_id,amount,currency,country,channel\n"
                            "00042,1795514400,123,007,42.50,EUR,FR,app\n",
            "fraud_labels": "event_id,is_fraud,ts\n00042,true,2026-11-24T10:00:00Z\n",
            "interactions": "event_id,ts,user_id,item_id,kind,rating\n1,1795514460,123,0311,rating,4\n",
            "reco_requests": "request_id,user_id,k,ts,exclude\n5521,123,3,1795514470,0311;0102\n"}
    for name, text in rows.items():
        (tmp_path / f"{name}.csv").write_text(text)
        streamsense("produce", str(tmp_path / f"{name}.csv"), "--topic", topics[name], env=env)

    async def first(topic: str) -> tuple[bytes, dict]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest")
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 30)
        finally:
            await consumer.stop()
        return record.key, json.loads(record.value)

    got = {name: asyncio.run(first(topic)) for name, topic in topics.items()}
    assert got["transactions"] == (b"123", {"event_id": "00042", "ts": 1795514400, "user_id": "123",
                                            "merchant_id": "007", "amount": 42.5, "currency": "EUR", "country": "FR",
                                            "channel": "app"})
    assert got["fraud_labels"] == (b"00042", {"event_id": "00042", "is_fraud": True, "ts": "2026-11-24T10:00:00Z"})
    assert got["interactions"] == (b"123", {"event_id": "1", "ts": 1795514460, "user_id": "123", "item_id": "0311",
                                            "kind": "rating", "rating": 4})
    assert got["reco_requests"] == (b"123", {"request_id": "5521", "user_id": "123", "k": 3, "ts": 1795514470,
                                             "exclude": ["0311", "0102"]})


def test_topics_create_makes_every_topic_with_its_partitions_and_replication(settings: Settings) -> None:
    done = streamsense("topics", "create", "--partitions", "3", env=settings.to_env())
    listed = dict(line.split("\t")[:2] for line in done.stdout.splitlines())
    expected = {**{name: "3 partitions" for name in all_topics(settings)},
                **{name: "1 partitions" for name in internal_topics(settings)}}
    assert listed == expected and settings.topics.model_events in listed

    async def described() -> dict[str, int]:
        admin = clients.admin(settings)
        await admin.start()
        try:
            return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(list(expected))}
        finally:
            await admin.close()

    assert asyncio.run(described()) == {name: int(text.split()[0]) for name, text in expected.items()}
