"""The client factory applies the broker's security and one set of timeouts to every client it
builds (read back from the constructed clients; nothing connects)."""

from __future__ import annotations

import ssl

import pytest
import trustme
from redis.asyncio.connection import SSLConnection as AsyncSSLConnection
from redis.connection import SSLConnection

from agents import clients
from schemas.settings import SecretStr, Settings

SASL_SSL = Settings(bootstrap_servers="127.0.0.1:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
                    sasl_username="streamsense", sasl_password=SecretStr("s3cret"))


async def kafka_clients(settings: Settings) -> list:
    """Producer, consumer and admin client, each with the aiokafka client that holds its settings."""
    built = [clients.producer(settings, acks="all", linger_ms=5),
             clients.consumer(settings, "transactions", enable_auto_commit=False), clients.admin(settings)]
    return [(client, getattr(client, "client", None) or client._client) for client in built]


async def close(client) -> None:
    await (client.close() if hasattr(client, "close") else client.stop())


@pytest.mark.parametrize("settings", [SASL_SSL, SASL_SSL.replace(security_protocol="SASL_PLAINTEXT",
                                                                  allow_plaintext_sasl=True)])
async def test_every_kafka_client_carries_the_sasl_credentials(settings: Settings) -> None:
    for client, conn in await kafka_clients(settings):
        assert conn._security_protocol == settings.security_protocol, client
        assert (conn._sasl_mechanism, conn._sasl_plain_username, conn._sasl_plain_password) == (
            "SCRAM-SHA-256", "streamsense", "s3cret"), client
        assert isinstance(conn._ssl_context, ssl.SSLContext) == (settings.security_protocol == "SASL_SSL"), client
        assert conn._bootstrap_servers == "127.0.0.1:9093"
        assert conn._request_timeout_ms == clients.KAFKA_REQUEST_TIMEOUT_MS, client
        await close(client)


async def test_every_kafka_client_speaks_tls_with_the_configured_ca(tmp_path) -> None:
    ca = trustme.CA()
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    for client, conn in await kafka_clients(Settings(security_protocol="SSL", ssl_cafile=str(cafile))):
        assert conn._security_protocol == "SSL", client
        assert conn._ssl_context.verify_mode == ssl.CERT_REQUIRED and conn._ssl_context.get_ca_certs(), client
        await close(client)


async def test_plaintext_kafka_clients_carry_no_credentials_and_a_callers_option_cannot_drop_security() -> None:
    for client, conn in await kafka_clients(Settings()):
        assert conn._security_protocol == "PLAINTEXT" and conn._ssl_context is None, client
        await close(client)
    producer = clients.producer(SASL_SSL, security_protocol="PLAINTEXT", bootstrap_servers="elsewhere:9092")
    assert producer.client._security_protocol == "SASL_SSL"
    assert producer.client._bootstrap_servers == "127.0.0.1:9093"
    await producer.stop()


async def test_redis_clients_share_the_timeouts_and_take_tls_and_auth_from_the_url() -> None:
    settings = Settings(redis_url=SecretStr("rediss://streamsense:pw@127.0.0.1:6380/0"))
    async_client, sync_client = clients.redis_client(settings), clients.sync_redis_client(settings)
    for client, tls_class in ((async_client, AsyncSSLConnection), (sync_client, SSLConnection)):
        kwargs = client.connection_pool.connection_kwargs
        assert client.connection_pool.connection_class is tls_class
        assert (kwargs["username"], kwargs["password"]) == ("streamsense", "pw")
        assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == clients.REDIS_TIMEOUT_S
        assert kwargs["health_check_interval"] == clients.REDIS_HEALTH_CHECK_INTERVAL_S
    await async_client.aclose()
    sync_client.close()


async def test_the_redis_cluster_setting_forces_the_client_kind_without_asking_the_server() -> None:
    from redis.asyncio import RedisCluster

    url = SecretStr("redis://127.0.0.1:1/0")  # nothing listens there: the setting alone decides
    assert isinstance(clients.redis_client(Settings(redis_url=url, redis_cluster="yes")), RedisCluster)
    single = clients.redis_client(Settings(redis_url=url, redis_cluster="no"))
    assert not isinstance(single, RedisCluster)
    await single.aclose()
    assert clients.redis_is_cluster(Settings(redis_url=url)) is False  # auto, unreachable: a single node
