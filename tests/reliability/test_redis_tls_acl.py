"""Redis over TLS with an ACL user, by configuration alone: the worker decides from Redis state
through ``rediss://user:password@host/0?ssl_ca_certs=...`` as a user allowed only the worker's key
prefix. (TLS is terminated by a proxy on loopback: the embedded Redis is built without TLS.)"""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest
import redis
import trustme

from agents.dev.embedded import start_redis
from schemas.settings import SecretStr, Settings
from scenario import create_all_topics, first_decisions, produce_steady, start
from delay_proxy import DelayProxy

pytestmark = pytest.mark.integration
EVENTS = 40


def test_the_worker_uses_redis_over_tls_as_an_acl_user_confined_to_its_prefix(settings: Settings,
                                                                               tmp_path) -> None:
    redis_proc, url = start_redis(tmp_path)
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    admin = redis.Redis.from_url(url)
    admin.acl_setuser("streamsense", enabled=True, passwords=["+s3cret-pw"], keys=[f"{settings.redis_key_prefix}:*"],
                      commands=["+@all"])
    admin.acl_setuser("default", enabled=False)  # no anonymous access: only the ACL user gets in
    try:
        with DelayProxy(int(url.rsplit(":", 1)[1].split("/")[0]), server_ssl=server_ssl) as tls:
            settings = settings.replace(redis_url=SecretStr(
                f"rediss://streamsense:s3cret-pw@127.0.0.1:{tls.port}/0?ssl_ca_certs={ca_file}"))
            create_all_topics(settings)
            worker = start(settings, tmp_path, "worker")
            try:
                time.sleep(6)  # join the group before traffic

                async def run() -> dict[str, dict]:
                    await produce_steady(settings, EVENTS, 4.0)
                    return await first_decisions(settings, EVENTS)

                decisions = asyncio.run(run())
                assert worker.alive()
            finally:
                worker.stop()
        log = (tmp_path / "worker.log").read_text()
        assert len(decisions) == EVENTS and not any(d["degraded"] for d in decisions.values()), log[-2000:]
        user = redis.Redis.from_url(url, username="streamsense", password="s3cret-pw")
        assert user.keys(f"{settings.redis_key_prefix}:u:*")  # the state is there, written as that user
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.get("someone-else:key")  # and that user can touch nothing outside the prefix
    finally:
        redis_proc.stop()
