"""Secure by default: no plain-text SASL unless asked, loopback HTTP, masked secrets, no public or
short keys outside development."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys

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
    assert creds.mechanism.name.startswith("SCRAM")
    assert creds.ssl_context.verify_mode == ssl.CERT_REQUIRED and creds.ssl_context.check_hostname  # checks the broker


def test_the_http_server_binds_loopback_by_default(tmp_path) -> None:
    app = make_app(Settings(data_dir=str(tmp_path))).app
    assert app.conf.web_bind == "127.0.0.1" and str(app.conf.canonical_url) == "http://127.0.0.1:6066"


def test_secrets_are_masked_when_printed() -> None:
    settings = Settings(redis_url=SecretStr("redis://:hunter2@db:6379/0"), sasl_password=SecretStr("hunter2"),
                        pseudonym_key=SecretStr("hunter2"), signing_key=SecretStr("hunter2"))
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)


STRONG = "s" * 32


@pytest.mark.parametrize("name, value, reason", [
    ("pseudonym_key", None, "public default"), ("pseudonym_key", "", "empty"), ("pseudonym_key", "x" * 31, "31 bytes"),
    ("signing_key", None, "public default"), ("signing_key", "", "empty"), ("signing_key", "short", "5 bytes"),
])
def test_public_empty_or_short_keys_are_refused_naming_the_setting(name, value, reason) -> None:
    env = {"STREAMSENSE_PSEUDONYM_KEY": STRONG, "STREAMSENSE_SIGNING_KEY": STRONG}
    if value is None:
        del env[f"STREAMSENSE_{name.upper()}"]
    else:
        env[f"STREAMSENSE_{name.upper()}"] = value
    settings = Settings.from_env(env)
    with pytest.raises(SettingsError, match=rf"^{name} \(STREAMSENSE_{name.upper()}\) cannot be used: .*{reason}"):
        settings.check_secrets()
    Settings.from_env({**env, "STREAMSENSE_DEV_MODE": "true"}).check_secrets()  # development only
    Settings.from_env({"STREAMSENSE_PSEUDONYM_KEY": STRONG, "STREAMSENSE_SIGNING_KEY": STRONG}).check_secrets()


def test_every_key_of_a_signing_ring_is_checked_and_the_newest_signs() -> None:
    ring = Settings.from_env({"STREAMSENSE_SIGNING_KEYS": f"new:{'n' * 32},old:{'o' * 32}"}).signing_keyring()
    assert ring.current_id == "new" and ring.get("old") == b"o" * 32
    weak = Settings.from_env({"STREAMSENSE_PSEUDONYM_KEY": STRONG, "STREAMSENSE_SIGNING_KEYS": f"new:{STRONG},old:x"})
    with pytest.raises(SettingsError, match=r"^signing_keys\[old\] \(STREAMSENSE_SIGNING_KEYS\) cannot be used"):
        weak.check_secrets()
    with pytest.raises(SettingsError, match="kid:secret"):
        Settings.from_env({"STREAMSENSE_SIGNING_KEYS": STRONG})
    assert Settings(signing_key=SecretStr(STRONG)).signing_keyring().keys == (("k0", STRONG.encode()),)


@pytest.mark.parametrize("command", [["worker"], ["models", "list"]])
def test_the_worker_and_the_models_command_refuse_to_start_on_the_public_keys(command) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSENSE_")}
    done = subprocess.run([sys.executable, "-m", "agents", *command], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "configuration error: pseudonym_key (STREAMSENSE_PSEUDONYM_KEY) cannot be used" in done.stderr


def test_a_secret_can_come_from_a_file_named_by_its_setting_and_file(tmp_path) -> None:
    (tmp_path / "key").write_text(STRONG + "\n")
    (tmp_path / "url").write_text("redis://streamsense:pw@redis:6379/0\n")
    settings = Settings.from_env({"STREAMSENSE_PSEUDONYM_KEY_FILE": str(tmp_path / "key"),
                                  "STREAMSENSE_SIGNING_KEY_FILE": str(tmp_path / "key"),
                                  "STREAMSENSE_REDIS_URL_FILE": str(tmp_path / "url")})
    settings.check_secrets()
    assert settings.pseudonym_key.get_secret_value() == STRONG
    assert settings.redis_url.get_secret_value() == "redis://streamsense:pw@redis:6379/0"
    with pytest.raises(SettingsError, match=r"signing_key: cannot read STREAMSENSE_SIGNING_KEY_FILE"):
        Settings.from_env({"STREAMSENSE_SIGNING_KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(SettingsError, match="only secrets come from files"):
        Settings.from_env({"STREAMSENSE_APP_ID_FILE": str(tmp_path / "key")})


def test_a_new_pseudonym_key_names_all_state_afresh_and_old_names_are_recognisable() -> None:
    from agents.stores.keys import RedisKeys

    old = Settings(pseudonym_key=SecretStr("o" * 32), pseudonym_key_id="p1")
    new = old.replace(pseudonym_key=SecretStr("n" * 32), pseudonym_key_id="p2")
    before, after = RedisKeys.from_settings(old), RedisKeys.from_settings(new)
    for name in ("user", "seen_items", "reco_list", "merchant"):
        old_key, new_key = getattr(before, name)("alice"), getattr(after, name)("alice")
        assert old_key != new_key and ":p1." in old_key and ":p2." in new_key  # not found under the new key
    assert old.pseudonyms().tag("FR") != new.pseudonyms().tag("FR")  # tags in user state change too
    assert not new.pseudonyms().made(old.pseudonyms().of("shop"))  # old snapshots' merchants are skipped
