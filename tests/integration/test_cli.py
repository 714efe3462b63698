"""The produce and tail commands as a user runs them, against the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest

from agents.commands.topics import create_topics
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
