"""Whether Redis can be trusted with the decision guard (event_id -> stored decision).

The guard is what makes a redelivered event get its first decision again. Two things silently
break it, and both are reported (log, metric, ``/ready``), never ignored:

- an eviction policy that may drop guard keys under memory pressure: anything but ``noeviction``
  (the ``volatile-*`` policies evict exactly the keys with a TTL, which every guard key has);
- a Redis that lost its data (restarted without persistence, flushed, failed over to an empty
  replica). The first worker writes an epoch key (no TTL); each worker remembers the epoch it saw,
  in memory and in its data_dir. An epoch that vanished or changed means the data is gone: the
  guard no longer knows which events were decided.

>>> EvictionReport.of("allkeys-lru").safe, EvictionReport.of("noeviction").safe
(False, True)
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from agents.stores.keys import RedisKeys

log = logging.getLogger(__name__)

SAFE_POLICIES = frozenset({"noeviction"})


@dataclass(frozen=True)
class EvictionReport:
    policy: str  # "unknown" when this Redis user may not read it

    @classmethod
    def of(cls, policy: str) -> EvictionReport:
        return cls(policy)

    @property
    def safe(self) -> bool:
        return self.policy in SAFE_POLICIES

    def warning(self) -> str | None:
        if self.safe:
            return None
        if self.policy == "unknown":
            return "could not read Redis's maxmemory-policy (INFO refused): guard keys may be evicted"
        return (f"Redis maxmemory-policy is {self.policy}: under memory pressure it may evict decision guard "
                "keys, and a redelivered event would then be decided again; set maxmemory-policy noeviction")


async def eviction_policy(redis: Redis) -> EvictionReport:
    try:
        info = await redis.info("memory")
    except ResponseError as exc:  # an ACL user without INFO
        log.warning("cannot read Redis's eviction policy: %s", exc)
        return EvictionReport.of("unknown")
    return EvictionReport.of(str(info.get("maxmemory_policy", "unknown")))


class Epoch:
    """The epoch this worker trusts, and how often the Redis behind it was found emptied."""

    def __init__(self, redis: Redis, keys: RedisKeys, data_dir: str) -> None:
        self.redis = redis
        self.key = keys.epoch()
        self.path = Path(data_dir) / f"redis-epoch-{keys.prefix.replace(':', '_')}"
        self.known: str | None = self.path.read_text().strip() if self.path.exists() else None
        self.losses = 0
        self.last_loss: str | None = None

    async def check(self) -> bool:
        """Adopt Redis's epoch (writing the first one); True when Redis lost its data since the last check."""
        raw = await self.redis.get(self.key)
        current = raw.decode() if raw is not None else None
        lost = self.known is not None and current != self.known
        if current is None:
            await self.redis.set(self.key, secrets.token_hex(8), nx=True)
            current = (await self.redis.get(self.key)).decode()
        if lost:
            self.losses += 1
            self.last_loss = (f"Redis lost its data: epoch {self.known} is "
                              f"{'gone' if raw is None else 'replaced by ' + current}; decisions stored before are "
                              "forgotten, so a redelivered event may be decided again")
            log.error(self.last_loss)
        if current != self.known:
            self.known = current
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(current)
        return lost
