"""docker/'s files as the tests read them: the compose file, and a service's environment with each
mounted secret made as a local file."""

from __future__ import annotations

import secrets
from pathlib import Path

import yaml

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def with_secret_files(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """``env`` with each ``/run/secrets/<name>`` file made in ``tmp_path`` (a strong random value)."""
    out = {}
    for name, value in env.items():
        if value.startswith("/run/secrets/"):
            path = tmp_path / value.rsplit("/", 1)[1]
            path.write_text(f"redis://streamsense:{'p' * 32}@redis:6379/0\n" if "redis" in path.name
                            else secrets.token_hex(32) + "\n")
            value = str(path)
        out[name] = value
    return out
