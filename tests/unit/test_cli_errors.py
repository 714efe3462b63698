"""The command line as a script meets it: one-line errors with exit codes, --version, help and
defaults on every option, api-key --json. No broker or Redis: the addresses are closed ports."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from agents.api.auth import token_hash
from agents.cli import build_parser
from agents.command_errors import EXIT_CONFIG, EXIT_NO_INPUT, EXIT_UNAVAILABLE
from agents.dev.embedded import free_port


def streamsense(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agents", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "STREAMSENSE_DEV_MODE": "true", **env})


def one_line(done: subprocess.CompletedProcess, command: str, code: int) -> str:
    """The command's own error: its last line (a client library may log before it), no traceback."""
    assert done.returncode == code and "Traceback" not in done.stderr, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"streamsense {command}: "), line
    return line


def subcommands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    return dict(sub.choices)


def test_every_option_has_help_and_shows_its_default() -> None:
    for name, parser in subcommands().items():
        for action in parser._actions:  # noqa: SLF001 - argparse has no public list of a parser's options
            if isinstance(action, argparse._HelpAction):  # noqa: SLF001
                continue
            assert action.help, (name, action.dest)
        text = " ".join(parser.format_help().split())
        for action in parser._actions:  # noqa: SLF001
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert f"(default: {action.default})" in text, (name, action.dest)


def test_version() -> None:
    done = streamsense("--version")
    assert done.returncode == 0 and done.stdout.startswith("streamsense ") and done.stdout.split()[1][0].isdigit()


def test_api_key_json_gives_a_script_the_token_and_its_entry() -> None:
    done = streamsense("api-key", "--client", "payments", "--scopes", "score", "--json")
    key = json.loads(done.stdout)
    assert key["client"] == "payments" and key["scopes"] == ["score"]
    assert key["entry"] == f"payments:score:{token_hash(key['token'])}"
    one_line(streamsense("api-key", "--client", "a:b"), "api-key", 2)


def test_unreachable_kafka_and_redis_are_one_line_each(tmp_path) -> None:
    closed = f"127.0.0.1:{free_port()}"
    line = one_line(streamsense("tail", "transactions", "--limit", "1", STREAMSENSE_BOOTSTRAP_SERVERS=closed),
                    "tail", EXIT_UNAVAILABLE)
    assert f"cannot reach Kafka at {closed}" in line
    line = one_line(streamsense("models", "list", STREAMSENSE_REDIS_URL=f"redis://{closed}/0"), "models",
                    EXIT_UNAVAILABLE)
    assert "cannot reach Redis" in line


def test_bad_settings_files_and_option_values(tmp_path) -> None:
    one_line(streamsense("tail", "x", STREAMSENSE_PARTITIONS="0"), "tail", EXIT_CONFIG)
    missing = tmp_path / "missing.jsonl"
    assert str(missing) in one_line(streamsense("produce", str(missing), "--topic", "transactions"), "produce",
                                    EXIT_NO_INPUT)
    for option, value in (("--delay", "later"), ("--models", "default,gpt"), ("--limit", "-3")):
        done = streamsense("evaluate", "Phishing", option, value)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert f"argument {option}" in done.stderr.strip().splitlines()[-1], done.stderr
