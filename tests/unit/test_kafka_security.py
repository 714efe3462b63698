"""Secured and managed Kafka from settings: a client certificate (mTLS, proven by a TLS handshake
with a server that requires one), OAUTHBEARER from a token file, group timeouts and replication
factor, and Confluent-framed values accepted."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
import trustme
from faust.auth import OAuthCredentials

from agents import clients
from schemas.settings import Settings, SettingsError
from schemas.validation import TRANSACTIONS, UNKEYED, InputRules, decode
from streams.app import broker_credentials, make_app, tls_context
from streams.oauth import TokenFile, TokenFileError


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> dict | None:
    """The client certificate a TLS server requiring one saw, or None when it refused the handshake."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[dict | None] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as tls:
                seen.append(tls.getpeercert())
        except (ssl.SSLError, OSError):
            seen.append(None)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname()) as raw, \
                client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.recv(1)  # TLS 1.3: the server's verdict on the client certificate arrives after the handshake
    except (ssl.SSLError, OSError):
        pass
    thread.join(10)
    listener.close()
    return seen[0]


def test_a_client_certificate_is_shown_to_a_broker_that_requires_one(tmp_path) -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    server.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client_cert = ca.issue_cert("streamsense-worker@example.org")
    client_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client_cert.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    mtls = Settings(security_protocol="SSL", ssl_cafile=str(tmp_path / "ca.pem"),
                    ssl_certfile=str(tmp_path / "client.pem"), ssl_keyfile=str(tmp_path / "client.key"))
    peer = handshake(server, tls_context(mtls))
    assert peer is not None and "streamsense-worker@example.org" in str(peer["subjectAltName"])
    assert handshake(server, tls_context(mtls.replace(ssl_certfile="", ssl_keyfile=""))) is None  # none shown
    assert clients.kafka_options(mtls)["ssl_context"] is not None
    with pytest.raises(SettingsError, match="cannot load the client certificate"):
        tls_context(mtls.replace(ssl_keyfile=str(tmp_path / "ca.pem")))
    with pytest.raises(SettingsError, match="need security_protocol SSL or SASL_SSL"):
        Settings(ssl_certfile=str(tmp_path / "client.pem")).check()


async def test_oauthbearer_reads_its_token_from_the_file_at_every_authentication(tmp_path) -> None:
    token = tmp_path / "token"
    token.write_text("eyJ.first\n")
    settings = Settings(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER",
                        sasl_oauth_token_file=str(token))
    settings.check()
    creds = broker_credentials(settings)
    assert isinstance(creds, OAuthCredentials) and creds.protocol.value == "SASL_SSL"
    options = clients.kafka_options(settings)
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "OAUTHBEARER")
    provider = options["sasl_oauth_token_provider"]
    assert isinstance(provider, TokenFile) and await provider.token() == "eyJ.first"
    token.write_text("eyJ.rotated")
    assert await provider.token() == "eyJ.rotated"
    token.write_text("")
    with pytest.raises(TokenFileError, match="empty"):
        await provider.token()
    producer = clients.producer(settings)
    assert isinstance(producer.client._sasl_oauth_token_provider, TokenFile)
    await producer.stop()
    with pytest.raises(SettingsError, match="needs sasl_oauth_token_file"):
        settings.replace(sasl_oauth_token_file="").check()


def test_group_timeouts_replication_and_compression_come_from_settings(tmp_path) -> None:
    settings = Settings(data_dir=str(tmp_path), session_timeout_s=45.0, heartbeat_interval_s=3.0,
                        rebalance_timeout_s=60.0, replication_factor=3, compression_type="zstd")
    conf = make_app(settings).app.conf
    assert (conf.broker_session_timeout, conf.broker_heartbeat_interval, conf.broker_rebalance_timeout) == (
        45.0, 3.0, 60.0)
    assert conf.topic_replication_factor == 3 and conf.producer_compression_type == "zstd"
    with pytest.raises(SettingsError, match="at most a third"):
        settings.replace(heartbeat_interval_s=20.0).check()
    with pytest.raises(SettingsError, match="compression_type"):
        settings.replace(compression_type="brotli").check()


def test_a_confluent_framed_value_is_decoded_like_the_bare_json() -> None:
    body = (b'{"event_id": "tx-1", "ts": 1795514400, "user_id": "u-1", "merchant_id": "m-1", "amount": 4.5, '
            b'"currency": "EUR", "country": "FR", "channel": "app"}')
    rules, now = InputRules(64 * 1024, 30 * 86400.0, 3600.0, False), 1795514400.0
    framed = b"\x00" + (1234).to_bytes(4, "big") + body
    assert decode(TRANSACTIONS, framed, rules=rules, now=now, key=UNKEYED) == decode(
        TRANSACTIONS, body, rules=rules, now=now, key=UNKEYED)
