"""Redis over TLS as the README's least-privilege ACL user, by configuration alone: the worker decides,
learns from labels, publishes a checkpoint and answers a recommendation request through
``rediss://user:password@host/0?ssl_ca_certs=...`` as a user allowed only the commands the README
lists on the worker's key prefix, with no failed Redis call; that user is refused FLUSHALL, CONFIG,
KEYS, SCRIPT FLUSH, ACL and any key outside the prefix. (TLS is terminated by a proxy on loopback:
the embedded Redis is built without TLS.)"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from pathlib import Path

import pytest
import redis
import trustme
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from delay_proxy import DelayProxy
from scenario import create_all_topics, first_decisions, produce_steady, start

from agents.dev.embedded import start_redis
from agents.dev.probes import metric, ready
from agents.stores.keys import RedisKeys
from schemas.settings import SecretStr, Settings

pytestmark = pytest.mark.integration
EVENTS = 40
PASSWORD = "s3cret-pw"
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_acl(prefix: str) -> list[str]:
    """The README's ``ACL SETUSER streamsense ...`` command for ``prefix``, as its words."""
    block = re.search(r"<!-- redis-acl:begin.*?```\n(ACL SETUSER .*?)\n```", README.read_text(), re.S).group(1)
    return block.replace("ss:streamsense-v1:*", f"{prefix}:*").replace(">PASSWORD", f">{PASSWORD}").split()


async def labels_and_reco_traffic(settings: Settings) -> dict:
    """Labels for half the decided events, interactions of one shopper, then their recommendation."""
    t, now = settings.topics, time.time()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    consumer = AIOKafkaConsumer(t.recommendations, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    try:
        for i in range(0, EVENTS, 2):
            await producer.send(t.fraud_labels, json.dumps({"event_id": f"r{i}", "is_fraud": i % 4 == 0,
                                                            "ts": now}).encode(), key=f"r{i}".encode())
        for i in range(6):
            interaction = {"event_id": f"i{i}", "ts": now - 60 + i, "user_id": "shopper", "item_id": f"item{i % 3}",
                           "kind": "view"}
            await producer.send(t.interactions, json.dumps(interaction).encode(), key=b"shopper")
        await producer.send(t.reco_requests, json.dumps({"request_id": "q1", "user_id": "shopper", "k": 3,
                                                         "ts": now}).encode(), key=b"shopper")
        await producer.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    return json.loads(r.value)
        raise AssertionError("no recommendation within 60 s")
    finally:
        await producer.stop()
        await consumer.stop()


def wait_for(what: str, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_the_worker_runs_over_tls_as_the_readme_acl_user_who_can_do_nothing_else(settings: Settings,
                                                                                tmp_path) -> None:
    redis_proc, url = start_redis(tmp_path)
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    admin = redis.Redis.from_url(url)
    admin.execute_command(*readme_acl(settings.redis_key_prefix))  # creates the user "streamsense"
    admin.acl_setuser("default", enabled=False)  # no anonymous access: only the ACL user gets in
    user = redis.Redis.from_url(url, username="streamsense", password=PASSWORD)
    try:
        with DelayProxy(int(url.rsplit(":", 1)[1].split("/")[0]), server_ssl=server_ssl) as tls:
            settings = settings.replace(checkpoint_interval_s=1.0, redis_url=SecretStr(
                f"rediss://streamsense:{PASSWORD}@127.0.0.1:{tls.port}/0?ssl_ca_certs={ca_file}"))
            create_all_topics(settings)
            worker = start(settings, tmp_path, "worker")
            keys = RedisKeys.from_settings(settings)
            try:
                wait_for("the worker to be ready", lambda: ready(settings.web_port))

                async def run() -> tuple[dict[str, dict], dict]:
                    await produce_steady(settings, EVENTS, 4.0)
                    return await first_decisions(settings, EVENTS), await labels_and_reco_traffic(settings)

                decisions, recommendation = asyncio.run(run())
                wait_for("the labels to be learned", lambda: metric(
                    settings.web_port, "streamsense_labels_learned_total", source="chargeback") + metric(
                    settings.web_port, "streamsense_labels_learned_total", source="confirmed") >= EVENTS // 2)
                wait_for("a checkpoint", lambda: user.get(keys.checkpoint_latest("fraud")) is not None)
                # Failed calls (a slow answer under load is counted too, as "slow": not a refusal).
                redis_errors = metric(settings.web_port, "streamsense_redis_errors_total",
                                      where=lambda labels: labels["operation"] != "slow")
                assert worker.alive()
            finally:
                worker.stop()
        log = (tmp_path / "worker.log").read_text()
        assert len(decisions) == EVENTS and not any(d["degraded"] for d in decisions.values()), log[-2000:]
        assert recommendation["request_id"] == "q1" and redis_errors == 0, log[-2000:]
        assert "no permissions" not in log, log[-2000:]  # timers log their failures instead of counting them
        assert user.exists(keys.user("u0"))  # the state is there, written as that user
        refused = {
            "FLUSHALL": lambda: user.flushall(), "CONFIG GET": lambda: user.config_get("*"),
            "CONFIG SET": lambda: user.config_set("dir", "/tmp"), "KEYS another prefix": lambda: user.keys("other:*"),
            "KEYS own prefix": lambda: user.keys(f"{settings.redis_key_prefix}:*"),
            "SCRIPT FLUSH": lambda: user.script_flush(), "ACL LIST": lambda: user.acl_list(),
            "GET another prefix": lambda: user.get("someone-else:key"),
            "SET another prefix": lambda: user.set("someone-else:key", "x"),
        }
        allowed = []
        for name, attempt in refused.items():
            try:
                attempt()
                allowed.append(name)
            except redis.exceptions.NoPermissionError:
                pass
        assert allowed == []
    finally:
        user.close()
        redis_proc.stop()
