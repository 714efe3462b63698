"""The checkpoint registry in Redis, shared by every worker: signed blobs, one key per version, and
a ``latest`` pointer that the learner moves when it publishes and an operator moves to roll back.

Writing a version is one MULTI/EXEC (blob, version index, pointer), so a reader never sees a
pointer to a missing blob. Restoring verifies before unpickling and walks down from the pointer
to the newest version that verifies and loads; every refused one is logged with the reason. Each
blob is signed for its slot (role, version, app id) with the newest signing key; any configured
key verifies (online_models.checkpoints). A version that verifies but cannot be unpickled (a class
renamed or moved since it was written) is refused like a tampered one, so it can never crash-loop
a worker that restores it.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable

from redis.asyncio import Redis

from agents.stores.keys import RedisKeys
from online_models.checkpoints import CheckpointRejected, read_header, seal, unseal
from schemas.keyring import KeyRing
from schemas.settings import Settings

log = logging.getLogger(__name__)

# What unpickling a verified blob raises when the code changed under it (module or class moved or
# renamed, attributes changed) or the blob holds something else than models.
UNLOADABLE = (pickle.UnpicklingError, AttributeError, ImportError, EOFError, IndexError, KeyError, TypeError,
              ValueError)

# Compare and set in one step: only a pointer still at ARGV[1] goes back to ARGV[2] ("" = none).
_POINT_BACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1
"""


class RedisCheckpoints:
    def __init__(self, redis: Redis, keys: RedisKeys, signing: KeyRing, app_id: str, keep: int = 10) -> None:
        self.redis = redis
        self.keys = keys
        self.signing = signing
        self.app_id = app_id
        self.keep = keep

    @classmethod
    def on_redis(cls, redis: Redis, settings: Settings) -> RedisCheckpoints:
        """The registry of ``settings``' deployment: its key layout, signing keys and app id."""
        return cls(redis, RedisKeys.from_settings(settings), settings.signing_keyring(), settings.app_id)

    def _slot(self, role: str, version: int) -> dict:
        return {"role": role, "version": version, "app_id": self.app_id}

    async def save(self, role: str, models: object, header: dict) -> int:
        version = int(await self.redis.incr(self.keys.checkpoint_seq(role)))
        blob = seal(models, header, self.signing, self._slot(role, version))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.checkpoint(role, version), blob)
            pipe.zadd(self.keys.checkpoint_index(role), {str(version): version})
            pipe.set(self.keys.checkpoint_latest(role), version)
            await pipe.execute()
        await self._prune(role)
        return version

    async def _prune(self, role: str) -> None:
        old = await self.redis.zrange(self.keys.checkpoint_index(role), 0, -self.keep - 1)
        if old:
            async with self.redis.pipeline(transaction=True) as pipe:
                for raw in old:
                    pipe.delete(self.keys.checkpoint(role, int(raw)))
                pipe.zrem(self.keys.checkpoint_index(role), *old)
                await pipe.execute()

    async def versions(self, role: str) -> list[int]:
        return [int(v) for v in await self.redis.zrange(self.keys.checkpoint_index(role), 0, -1)]

    async def latest(self, role: str) -> int | None:
        raw = await self.redis.get(self.keys.checkpoint_latest(role))
        return int(raw) if raw is not None else None

    async def point_to(self, role: str, version: int) -> dict:
        """Make ``version`` the one every worker serves (promote / roll back); it must verify.
        Returns its header."""
        _, header = await self.load(role, version)
        await self.redis.set(self.keys.checkpoint_latest(role), version)
        return header

    async def point_back(self, role: str, moved_to: int, previous: int | None) -> bool:
        """Undo ``point_to(role, moved_to)``: the pointer goes back to ``previous`` (or away, if there
        was none), unless something moved it since -- a learner's newer checkpoint is kept."""
        point_back = self.redis.register_script(_POINT_BACK)  # EVALSHA: inside the README's Redis ACL
        return bool(await point_back(keys=[self.keys.checkpoint_latest(role)],
                                     args=[moved_to, "" if previous is None else previous]))

    async def load(self, role: str, version: int) -> tuple[object, dict]:
        blob = await self.redis.get(self.keys.checkpoint(role, version))
        if blob is None:
            raise CheckpointRejected(f"{role} checkpoint v{version} does not exist")
        try:
            return unseal(blob, self.signing, self._slot(role, version))
        except CheckpointRejected:
            raise
        except UNLOADABLE as exc:
            raise CheckpointRejected(f"verifies but cannot be loaded: {exc!r}") from exc

    async def restore(self, role: str, install: Callable[[object, dict], None] | None = None
                      ) -> tuple[object, dict] | None:
        """The newest verified checkpoint at or below the ``latest`` pointer, or None (fallback model).

        ``install`` puts the models to use; if it raises CheckpointRejected, the next older version is tried.
        """
        latest = await self.latest(role)
        for version in sorted((v for v in await self.versions(role) if latest is None or v <= latest),
                              reverse=True):
            try:
                models, header = await self.load(role, version)
                if install is not None:
                    install(models, header)
            except CheckpointRejected as exc:
                log.error("refused checkpoint %s v%d: %s", role, version, exc)
                continue
            log.info("restored checkpoint %s v%d (model %s, offsets %s)", role, version,
                     header.get("model_version"), header.get("offsets"))
            return models, header
        return None

    async def headers(self, role: str) -> list[dict]:
        out = []
        for version in await self.versions(role):
            blob = await self.redis.get(self.keys.checkpoint(role, version))
            try:
                out.append(read_header(blob or b""))
            except (CheckpointRejected, ValueError) as exc:  # ValueError: a header that is not JSON
                out.append({"role": role, "version": version, "error": str(exc)})
        return out
