"""Shared fixtures: a real broker and a real Redis, started lazily once per session on free ports;
settings isolated per test (topics, consumer group, key prefix); a worker process."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from agents.commands.topics import create_topics
from agents.dev.embedded import ManagedProcess, RedisCluster, free_port, start_broker, start_redis
from schemas.settings import SecretStr, Settings, Topics

# In CI every property test runs the same examples each time (a red CI names a real, reproducible case);
# on a developer's machine they explore anew on every run, which is how new cases are found.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

SERVICE_FIXTURES = {"broker", "redis_url"}
SERVICE_TIERS = {"agents", "integration", "reliability"}  # tests/<tier>: every test there is integration


def pytest_collection_modifyitems(items) -> None:
    """Keep the fast tier (`-m "not integration"`) free of services: the service tiers are marked by
    directory, and a test elsewhere that reaches the broker or Redis fixtures without the marker is
    refused, so the split cannot drift."""
    here = Path(__file__).parent
    for item in items:
        if item.path.parent.name in SERVICE_TIERS and item.path.parent.parent == here:
            item.add_marker(pytest.mark.integration)
    unmarked = [item.nodeid for item in items if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("integration") is None]
    if unmarked:
        raise pytest.UsageError("uses the broker or Redis without @pytest.mark.integration: " + ", ".join(unmarked))


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> str:
    proc, bootstrap = start_broker(tmp_path_factory.mktemp("broker"))
    yield bootstrap
    proc.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """A single Redis; with SS_TEST_REDIS=cluster, a 3-master 3-replica Redis Cluster instead (the
    cluster tier of ``make test`` runs the store tests again on it)."""
    if os.environ.get("SS_TEST_REDIS") == "cluster":
        with RedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
            yield cluster.url
        return
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory) -> RedisCluster:
    """A 3-master 3-replica Redis Cluster of this session's own (failover tests kill its masters)."""
    with RedisCluster(tmp_path_factory.mktemp("own-cluster")) as cluster:
        yield cluster


@pytest.fixture
def settings(broker: str, redis_url: str, tmp_path) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        bootstrap_servers=broker, redis_url=SecretStr(redis_url), app_id=f"streamsense-test-{suffix}",
        partitions=4, data_dir=str(tmp_path / "data"),
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
