"""Redis state of the recommendation path, pipelined per batch.

- claims: ``SET NX GET`` per interaction / request id records the input offset that first carried
  it, so a duplicate id from another offset is refused and a redelivery is recognised. An
  interaction's claim and its effects (seen item, popularity) are one script: a crash between
  them can neither lose the effects (a redelivery is recognised as such and skipped) nor count
  them twice;
- seen items per user (a set), excluded from that user's lists;
- popularity: one sorted set per hour of event time, shared by all workers;
- cached lists: the user's current top-K as a sorted set with a TTL, for other services.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from redis.asyncio import Redis

from agents.stores.keys import RedisKeys, declared
from schemas.settings import Settings
from streams.popularity import popularity_bucket

POPULARITY_TTL_S = 3 * 86400
TRENDING_READ = 2000  # items read per hourly bucket


# Per interaction: {claim key, source, seen key or "", item, popularity key, weight}; returns the
# source that claimed each id before ("" when this one did, and then its effects are applied).
_CLAIM_AND_RECORD = """
local req = cjson.decode(ARGV[1])
local out = {}
for _, it in ipairs(req.i) do
  local before = redis.call('SET', it[1], it[2], 'NX', 'GET', 'EX', req.ttl)
  if before then
    out[#out + 1] = before
  else
    out[#out + 1] = ''
    if it[3] ~= '' then
      redis.call('SADD', it[3], it[4])
      redis.call('EXPIRE', it[3], req.state_ttl)
      if tonumber(it[6]) > 0 then  -- a repeat adds nothing (streams.popularity.trending_weight)
        redis.call('ZINCRBY', it[5], it[6], it[4])
        redis.call('EXPIRE', it[5], req.pop_ttl)
      end
    end
  end
end
return out
"""


class RecoStore:
    def __init__(self, redis: Redis, keys: RedisKeys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self._claim_and_record = redis.register_script(_CLAIM_AND_RECORD)

    async def claim_interactions(self, interactions: Sequence[tuple[str, str, tuple[str, str, float, float] | None]]
                                 ) -> list[str | None]:
        """For each (id, source, effect): the source that claimed the id before, or None if this one
        did -- and then, in the same script, its effect (user, item, event ts, weight; None: no
        effect) is applied to the user's seen items and the item's popularity."""
        if not interactions:
            return []
        rows = []
        for message_id, source, effect in interactions:
            if effect is None:
                rows.append([self.keys.claim("i", message_id), source, "", "", "", 0])
            else:
                user_id, item_id, ts, weight = effect
                rows.append([self.keys.claim("i", message_id), source, self.keys.seen_items(user_id), item_id,
                             self.keys.popularity(popularity_bucket(ts)), repr(float(weight))])
        keys = declared(key for row in rows for key in (row[0], row[2], row[4]))
        replies = await self._claim_and_record(keys=keys, args=[json.dumps({
            "i": rows, "ttl": self.settings.decision_ttl_s, "state_ttl": self.settings.state_ttl_s,
            "pop_ttl": POPULARITY_TTL_S})])
        return [r.decode() or None for r in replies]

    async def claim(self, kind: str, claims: Sequence[tuple[str, str]]) -> list[str | None]:
        """For each (id, source): the source that claimed the id before, or None if this one did."""
        if not claims:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for message_id, source in claims:
                pipe.set(self.keys.claim(kind, message_id), source, nx=True, get=True,
                         ex=self.settings.decision_ttl_s)
            replies = await pipe.execute()
        return [r.decode() if r is not None else None for r in replies]

    async def seen(self, user_ids: Iterable[str]) -> dict[str, set[str]]:
        users = list(dict.fromkeys(user_ids))
        if not users:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in users:
                pipe.smembers(self.keys.seen_items(user_id))
            replies = await pipe.execute()
        return {u: {m.decode() for m in r} for u, r in zip(users, replies, strict=True)}

    async def record_lists(self, lists: Mapping[str, Sequence[tuple[str, float]]]) -> None:
        """Replace the users' cached lists."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id, items in lists.items():
                key = self.keys.reco_list(user_id)
                pipe.delete(key)
                if items:
                    pipe.zadd(key, dict(items))
                    pipe.expire(key, self.settings.reco_list_ttl_s)
            await pipe.execute()

    async def popularity(self, buckets: Sequence[int]) -> dict[int, dict[str, float]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for bucket in buckets:
                pipe.zrange(self.keys.popularity(bucket), 0, TRENDING_READ - 1, desc=True, withscores=True)
            replies = await pipe.execute()
        return {b: {item.decode(): score for item, score in r} for b, r in zip(buckets, replies, strict=True)}
