"""Whether Redis can be trusted with the decision guard (real Redis): the guard outlives the acceptance
window plus the longest replay, an evicting policy is reported, and a Redis that lost its data is
noticed -- by a running worker and by one that restarts."""

from __future__ import annotations

import uuid

import pytest

from agents.clients import redis_client
from agents.dev.embedded import start_redis
from agents.stores.keys import RedisKeys
from agents.stores.trust import Epoch, eviction_policy
from schemas.settings import SecretStr, Settings, SettingsError

pytestmark = pytest.mark.integration


def test_the_settings_refuse_a_guard_shorter_than_the_acceptance_window_plus_the_longest_replay() -> None:
    assert Settings.from_mapping({}).decision_ttl_s >= 30 * 86400 + 3600 + 7 * 86400
    with pytest.raises(SettingsError, match="decision_ttl_s"):
        Settings.from_mapping({"decision_ttl_s": 7 * 86400})
    with pytest.raises(SettingsError, match="max_replay_s"):
        Settings.from_mapping({"max_past_s": 86400, "max_replay_s": 40 * 86400})
    Settings.from_mapping({"max_past_s": 86400, "max_replay_s": 86400, "decision_ttl_s": 3 * 86400})


async def test_an_epoch_that_vanishes_or_changes_is_reported_as_data_loss(redis_url: str, tmp_path) -> None:
    redis = redis_client(Settings(redis_url=SecretStr(redis_url)))
    keys = RedisKeys(f"ss:trust:{uuid.uuid4().hex[:6]}", b"p")
    try:
        worker = Epoch(redis, keys, str(tmp_path / "a"))
        assert await worker.check() is False and await worker.check() is False  # first start, then steady
        await redis.delete(keys.epoch())  # Redis restarted empty
        assert await worker.check() is True and worker.losses == 1 and "gone" in worker.last_loss
        assert await worker.check() is False  # reported once, the new epoch adopted
        other = Epoch(redis, keys, str(tmp_path / "b"))
        assert await other.check() is False  # a worker that first sees Redis now has nothing to compare
        await redis.delete(keys.epoch())
        assert await other.check() is True  # ... from then on it does
        assert await worker.check() is True and "replaced by" in worker.last_loss  # another worker wrote anew
        await redis.delete(keys.epoch())
        restarted = Epoch(redis, keys, str(tmp_path / "a"))  # the epoch it saw survives in its data_dir
        assert await restarted.check() is True
    finally:
        await redis.aclose()


async def test_only_noeviction_is_safe_for_the_guard(tmp_path) -> None:
    proc, url = start_redis(tmp_path)
    redis = redis_client(Settings(redis_url=SecretStr(url)))
    try:
        assert (await eviction_policy(redis)).safe  # Redis's default
        for policy in ("volatile-lru", "allkeys-lru", "volatile-ttl"):
            await redis.config_set("maxmemory-policy", policy)
            report = await eviction_policy(redis)
            assert report.policy == policy and not report.safe and "noeviction" in report.warning()
    finally:
        await redis.aclose()
        proc.stop()
