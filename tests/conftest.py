"""Shared fixtures: a real broker and a real Redis, started lazily once per session on free ports;
settings isolated per test (topics, consumer group, key prefix); a worker process."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest

from agents.commands.topics import create_topics
from agents.dev.embedded import ManagedProcess, free_port, start_broker, start_redis
from schemas.settings import SecretStr, Settings, Topics


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> str:
    proc, bootstrap = start_broker(tmp_path_factory.mktemp("broker"))
    yield bootstrap
    proc.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.stop()


@pytest.fixture
def settings(broker: str, redis_url: str, tmp_path) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        bootstrap_servers=broker, redis_url=SecretStr(redis_url), app_id=f"streamsense-test-{suffix}",
        redis_key_prefix=f"ss:test:{suffix}", partitions=4, data_dir=str(tmp_path / "data"),
        web_port=free_port(), dev_mode=True,  # the public development keys, on loopback only
        topics=Topics(**{name: f"{name}-{suffix}" for name in Topics.__dataclass_fields__}),
    )


@pytest.fixture
def worker(settings: Settings, tmp_path):
    asyncio.run(create_topics(settings))
    proc = ManagedProcess("worker", [sys.executable, "-m", "agents", "worker", "--loglevel", "warning"],
                          env={**os.environ, **settings.to_env()}, log_dir=tmp_path)
    yield proc
    proc.stop()
