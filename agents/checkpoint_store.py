"""Checkpoints on disk: one file per version, written atomically (temp file, fsync, rename).

Restoring walks versions newest first and loads the first one whose signature verifies; every
refused file is logged with the reason. The newest ``keep`` versions are kept.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

from online_models.checkpoints import CheckpointRejected, read_header, seal, unseal

log = logging.getLogger(__name__)
NAME = re.compile(r"(?P<role>[a-z]+)-(?P<version>\d{8})\.ckpt")


class FileCheckpoints:
    def __init__(self, directory: Path, key: bytes, keep: int = 5) -> None:
        self.directory = Path(directory)
        self.key = key
        self.keep = keep

    def versions(self, role: str) -> list[int]:
        if not self.directory.exists():
            return []
        found = (NAME.fullmatch(p.name) for p in self.directory.iterdir())
        return sorted(int(m["version"]) for m in found if m and m["role"] == role)

    def path(self, role: str, version: int) -> Path:
        return self.directory / f"{role}-{version:08d}.ckpt"

    def save(self, role: str, models: object, header: dict) -> int:
        version = (self.versions(role) or [0])[-1] + 1
        blob = seal(models, {**header, "role": role, "version": version}, self.key)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{role}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path(role, version))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for old in self.versions(role)[: -self.keep]:
            self.path(role, old).unlink(missing_ok=True)
        return version

    def restore(self, role: str) -> tuple[object, dict] | None:
        """The newest checkpoint of ``role`` that verifies, or None (then the fallback model serves)."""
        for version in reversed(self.versions(role)):
            path = self.path(role, version)
            try:
                models, header = unseal(path.read_bytes(), self.key)
            except (CheckpointRejected, OSError, ValueError) as exc:
                log.error("refused checkpoint %s: %s", path, exc)
                continue
            log.info("restored checkpoint %s (model %s, offsets %s)", path, header.get("model_version"),
                     header.get("offsets"))
            return models, header
        return None

    def headers(self, role: str) -> list[dict]:
        out = []
        for version in self.versions(role):
            try:
                out.append(read_header(self.path(role, version).read_bytes()))
            except (CheckpointRejected, OSError, ValueError) as exc:
                out.append({"role": role, "version": version, "error": str(exc)})
        return out
