"""The published rule set in Redis: one key per role holding the rule set's document, which every
worker reads each second (agents.rules_follower) and ``streamsense rules publish`` writes."""

from __future__ import annotations

from redis.asyncio import Redis

from agents.stores.keys import RedisKeys
from online_models.rules import RuleSet
from schemas.settings import Settings

ROLE = "fraud"


class RedisRuleSets:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self.redis = redis
        self.keys = keys

    @classmethod
    def on_redis(cls, redis: Redis, settings: Settings) -> RedisRuleSets:
        return cls(redis, RedisKeys.from_settings(settings))

    async def publish(self, rules: RuleSet) -> None:
        await self.redis.set(self.keys.rule_set(ROLE), rules.to_json())

    async def current(self) -> bytes | None:
        """The published document as stored (None: nothing published, the default rules serve)."""
        return await self.redis.get(self.keys.rule_set(ROLE))
