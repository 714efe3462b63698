"""Secure by default: no plain-text SASL unless asked, loopback HTTP, masked secrets."""

from __future__ import annotations

import pytest

from schemas.settings import SecretStr, Settings, SettingsError
from streams.app import broker_credentials, make_app


def test_sasl_without_tls_is_refused_unless_explicitly_allowed() -> None:
    with pytest.raises(SettingsError, match="clear text"):
        Settings.from_env({"STREAMSENSE_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "STREAMSENSE_SASL_USERNAME": "u",
                           "STREAMSENSE_SASL_PASSWORD": "p"})
    with pytest.raises(SettingsError):
        broker_credentials(Settings(security_protocol="SASL_PLAINTEXT"))
    allowed = Settings(security_protocol="SASL_PLAINTEXT", allow_plaintext_sasl=True, sasl_username="u",
                       sasl_password=SecretStr("p"))
    assert broker_credentials(allowed).ssl_context is None


def test_sasl_over_tls_carries_a_tls_context() -> None:
    creds = broker_credentials(Settings(security_protocol="SASL_SSL", sasl_username="u", sasl_password=SecretStr("p")))
    assert creds.ssl_context is not None and creds.mechanism.name.startswith("SCRAM")


def test_the_http_server_binds_loopback_by_default(tmp_path) -> None:
    app = make_app(Settings(data_dir=str(tmp_path))).app
    assert app.conf.web_host == "127.0.0.1" and app.conf.web_bind == "127.0.0.1"


def test_secrets_are_masked_when_printed() -> None:
    settings = Settings(redis_url=SecretStr("redis://:hunter2@db:6379/0"), sasl_password=SecretStr("hunter2"),
                        pseudonym_key=SecretStr("hunter2"), signing_key=SecretStr("hunter2"))
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
