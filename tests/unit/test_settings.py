"""Settings that fit platforms: unknown variables warned, Faust's own variables ignored, secrets
from files, numbers within bounds, and the README's table equal to the code."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from schemas.settings import Settings, SettingsError
from schemas.settings_readme import readme_table
from schemas.settings_reference import ABOUT
from streams.app import make_app

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_settings_table_is_generated_from_the_code() -> None:
    assert set(ABOUT) == {f.name for f in fields(Settings)}  # every setting has its meaning, none is stale
    assert readme_table() in README.read_text()


def test_kubernetes_service_variables_are_warned_about_not_fatal() -> None:
    warned: list[str] = []
    env = {"STREAMSENSE_SERVICE_HOST": "10.0.0.7", "STREAMSENSE_SERVICE_PORT": "6066",
           "STREAMSENSE_PORT_6066_TCP": "tcp://10.0.0.7:6066", "STREAMSENSE_APP_ID": "streamsense-v9"}
    settings = Settings.from_env(env, warn=warned.append)
    assert settings.app_id == "streamsense-v9"
    assert [w.split(":")[0] for w in warned] == [f"ignoring STREAMSENSE_{name}" for name in
                                                 ("PORT_6066_TCP", "SERVICE_HOST", "SERVICE_PORT")]


def test_a_retired_setting_is_refused_with_what_replaced_it() -> None:
    with pytest.raises(SettingsError, match="STREAMSENSE_WEB_BIND"):
        Settings.from_env({"STREAMSENSE_WEB_HOST": "0.0.0.0"}, warn=pytest.fail)


def test_fausts_unprefixed_variables_cannot_override_ours(monkeypatch, tmp_path) -> None:
    faust_env = {"WEB_PORT": "1", "WEB_BIND": "0.0.0.0", "WEB_HOST": "elsewhere", "NODE_CANONICAL_URL": "http://x:1",
                 "BROKER_URL": "kafka://nowhere:1", "BROKER_SESSION_TIMEOUT": "600", "TOPIC_PARTITIONS": "99",
                 "APP_DATADIR": "/nowhere", "PRODUCER_ACKS": "0", "APP_ENV_PREFIX": "X_"}
    for name, value in faust_env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=str(tmp_path), web_port=7001, bootstrap_servers="k1:9092", partitions=8)
    conf = make_app(settings).app.conf
    assert (conf.web_port, conf.web_bind, str(conf.canonical_url)) == (7001, "127.0.0.1", "http://127.0.0.1:7001")
    assert [str(url) for url in conf.broker] == ["kafka://k1:9092"] and conf.topic_partitions == 8
    assert conf.broker_session_timeout == 10 and conf.producer_acks == -1 and str(conf.datadir) == str(tmp_path)


def test_a_secret_comes_from_its_file_or_its_variable_not_both(tmp_path) -> None:
    (tmp_path / "password").write_text("from-file\n")
    assert Settings.from_env({"STREAMSENSE_SASL_PASSWORD_FILE": str(tmp_path / "password")}
                             ).sasl_password.get_secret_value() == "from-file"
    with pytest.raises(SettingsError, match="not both"):
        Settings.from_env({"STREAMSENSE_SASL_PASSWORD_FILE": str(tmp_path / "password"),
                           "STREAMSENSE_SASL_PASSWORD": "inline"})


@pytest.mark.parametrize(("name", "value"), [("partitions", "0"), ("web_port", "70000"), ("review_threshold", "nan"),
                                             ("api_rate_per_s", "-1"), ("batch_size", "0"), ("reco_explore_share", "2"),
                                             ("checkpoint_interval_s", "0"), ("max_event_bytes", "10")])
def test_numbers_out_of_bounds_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"STREAMSENSE_{name.upper()}"):
        Settings.from_env({f"STREAMSENSE_{name.upper()}": value})


def test_every_default_lies_within_its_bounds() -> None:
    Settings().check()  # raises naming the first default out of its range
    bounded = [name for name, about in ABOUT.items() if about.bounds()]
    assert len(bounded) >= 30, bounded
