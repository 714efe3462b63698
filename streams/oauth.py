"""SASL OAUTHBEARER for Kafka: the bearer token comes from a file the platform keeps fresh.

aiokafka asks the provider for a token at every (re)authentication, so reading the file each time
picks up a rotated token without a restart.

>>> import asyncio, tempfile
>>> path = Path(tempfile.mkdtemp()) / "token"
>>> _ = path.write_text("eyJhbGciOi.first\\n")
>>> provider = TokenFile(str(path))
>>> asyncio.run(provider.token())
'eyJhbGciOi.first'
>>> _ = path.write_text("eyJhbGciOi.second")
>>> asyncio.run(provider.token())
'eyJhbGciOi.second'
"""

from __future__ import annotations

from pathlib import Path

from aiokafka.abc import AbstractTokenProvider


class TokenFileError(OSError):
    """The token file cannot be read or is empty."""


class TokenFile(AbstractTokenProvider):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    async def token(self) -> str:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TokenFileError(f"cannot read the OAUTHBEARER token file {self.path}: {exc.strerror}") from None
        if not text:
            raise TokenFileError(f"the OAUTHBEARER token file {self.path} is empty")
        return text
