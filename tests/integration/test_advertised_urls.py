"""Two workers configured as docker/compose.yaml configures them: the same bind address and port,
each advertising its own URL. A request to either is answered by the owner of the user's partition,
and ``X-Streamsense-Served-By`` names that owner's advertised URL.

Tests use loopback only, so compose's values are carried over to loopback stand-ins: each container's
0.0.0.0 becomes the worker's own loopback address (127.0.0.2, 127.0.0.3) and its host name
``worker-N`` that address; the port is one port, the same for both, as 6066 is in compose. Kafka's
and Redis's addresses and credentials are the test's (Tansu without SASL).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner
from api_client import keys
from compose_files import compose, with_secret_files
from waiting import wait_until

from agents.commands.topics import create_topics
from agents.dev.embedded import ManagedProcess, free_port
from schemas.settings import Settings, Topics

pytestmark = pytest.mark.integration

WORKERS = ("worker-1", "worker-2")
LOOPBACK = {"worker-1": "127.0.0.2", "worker-2": "127.0.0.3"}
USERS = [f"u-adv-{i}" for i in range(16)]
TOKENS, API_KEYS = keys(("payments", "recommend"))


def environments(broker: str, redis_url: str, tmp_path) -> dict[str, dict[str, str]]:
    services = compose()["services"]
    port, suffix = free_port(), uuid.uuid4().hex[:8]
    (tmp_path / "test-redis-url").write_text(redis_url + "\n")
    test_only = {"STREAMSENSE_BOOTSTRAP_SERVERS": broker, "STREAMSENSE_SECURITY_PROTOCOL": "PLAINTEXT",
                 "STREAMSENSE_REDIS_URL_FILE": str(tmp_path / "test-redis-url"), "STREAMSENSE_API_KEYS": API_KEYS,
                 "STREAMSENSE_APP_ID": f"streamsense-adv-{suffix}",
                 **{f"STREAMSENSE_TOPIC_{t.upper()}": f"{t}-{suffix}" for t in Topics.__dataclass_fields__}}
    shared = with_secret_files(services["worker-1"]["environment"], tmp_path)  # one set of keys for both
    envs = {}
    for name in WORKERS:
        compose_env = services[name]["environment"]
        assert compose_env["STREAMSENSE_WEB_BIND"] == "0.0.0.0" and compose_env["STREAMSENSE_WEB_PORT"] == "6066"
        assert compose_env["STREAMSENSE_ADVERTISED_URL"] == f"http://{name}:6066"
        env = {k: v for k, v in {**compose_env, **shared}.items() if not k.startswith("STREAMSENSE_SASL_")}
        env.update(test_only, STREAMSENSE_WEB_BIND=LOOPBACK[name], STREAMSENSE_WEB_PORT=str(port),
                   STREAMSENSE_ADVERTISED_URL=f"http://{LOOPBACK[name]}:{port}",
                   STREAMSENSE_DATA_DIR=str(tmp_path / f"{name}-data"))
        envs[name] = env
    return envs


def get(url: str, token: str | None = None) -> tuple[int, dict, dict | None]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.load(exc)
    except OSError:
        return 0, {}, None


def served_by(base: str, user: str) -> str | None:
    status, head, _ = get(f"{base}/v1/recommendations/{user}?k=2", TOKENS["payments"])
    return head.get("X-Streamsense-Served-By") if status == 200 else None


def test_two_workers_configured_as_in_compose_forward_to_the_owner(broker, redis_url, tmp_path) -> None:
    envs = environments(broker, redis_url, tmp_path)
    settings = {name: Settings.from_env(env) for name, env in envs.items()}
    asyncio.run(create_topics(settings["worker-1"]))
    urls = [settings[name].web_url for name in WORKERS]
    assert len(set(urls)) == 2 and len({(s.web_bind, s.web_port) for s in settings.values()}) == 2
    procs = [ManagedProcess(name, [sys.executable, "-m", "agents", "worker", "--loglevel", "warning"],
                            env={**os.environ, **envs[name]}, log_dir=tmp_path) for name in WORKERS]
    try:
        wait_until(lambda: all(get(f"{url}/ready")[0] == 200 for url in urls), 90, "both workers ready")

        def settled() -> list[dict[str, str | None]] | None:
            """Each user's serving worker as each worker says, once both agree and both serve some."""
            seen = [{user: served_by(url, user) for user in USERS} for url in urls]
            return seen if seen[0] == seen[1] and set(seen[0].values()) == set(urls) else None

        owners = wait_until(settled, 90, "both workers to route every user to the same owner", interval=1.0)[0]
        # Each worker answered for users it does not own by forwarding to the owner, named by its URL.
        for url in urls:
            assert {owner for owner in owners.values() if owner != url}, (url, owners)
        # The owner follows the partition, over the topic's 8 partitions.
        by_partition: dict[int, set[str]] = {}
        every = list(range(8))
        for user, owner in owners.items():
            by_partition.setdefault(DefaultPartitioner()(user.encode(), every, every), set()).add(owner)
        assert all(len(owner) == 1 for owner in by_partition.values()), by_partition
        # Neither worker sees its URL advertised by another.
        assert all(get(f"{url}/ready")[2]["warnings"] == [] for url in urls)
    finally:
        for proc in procs:
            proc.stop()
