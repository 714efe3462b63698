"""Redis state of the recommendation path, pipelined per batch.

- claims: ``SET NX GET`` per interaction / request id records the input offset that first carried
  it, so a duplicate id from another offset is refused and a redelivery is recognised;
- seen items per user (a set), excluded from that user's lists;
- popularity: one sorted set per hour of event time, shared by all workers;
- cached lists: the user's current top-K as a sorted set with a TTL, for other services.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from redis.asyncio import Redis

from agents.stores.keys import RedisKeys
from schemas.settings import Settings
from streams.popularity import popularity_bucket

POPULARITY_TTL_S = 3 * 86400
TRENDING_READ = 2000  # items read per hourly bucket


class RecoStore:
    def __init__(self, redis: Redis, keys: RedisKeys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings

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

    async def record(self, interactions: Sequence[tuple[str, str, float, float]],
                     lists: Mapping[str, Sequence[tuple[str, float]]]) -> None:
        """Add (user, item, event ts, weight) interactions and replace the users' cached lists."""
        ttl = self.settings.state_ttl_s
        # Folded per batch: one SADD and EXPIRE per user, one ZINCRBY per item and hour, one EXPIRE
        # per hour (Redis commands were the path's biggest cost after the model).
        seen: dict[str, list[str]] = defaultdict(list)
        popular: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for user_id, item_id, ts, weight in interactions:
            seen[self.keys.seen_items(user_id)].append(item_id)
            popular[self.keys.popularity(popularity_bucket(ts))][item_id] += weight
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, items in seen.items():
                pipe.sadd(key, *items)
                pipe.expire(key, ttl)
            for bucket, weights in popular.items():
                for item_id, weight in weights.items():
                    if weight:  # a repeat adds nothing (streams.popularity.trending_weight)
                        pipe.zincrby(bucket, weight, item_id)
                pipe.expire(bucket, POPULARITY_TTL_S)
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
