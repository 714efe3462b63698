"""Shared fixtures: a real broker and a real Redis, started lazily once per session on free ports."""

from __future__ import annotations

import pytest

from agents.embedded import start_broker, start_redis


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
