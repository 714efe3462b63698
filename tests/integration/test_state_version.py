"""One version for all state: bumping app_id starts fresh Redis state and restores no old model.

The worker's own start-up (Runtime.on_start: restore from the registry) against a real Redis that
holds what a worker of the previous version left: a published model and a user's feature state.
"""

from __future__ import annotations

import uuid

import pytest

from agents.clients import redis_client
from agents.stores.checkpoints import RedisCheckpoints
from agents.stores.keys import RedisKeys
from agents.worker import build_worker
from online_models.engine import FraudEngine
from schemas.records import Transaction
from schemas.settings import SecretStr, Settings, SettingsError

pytestmark = pytest.mark.integration


def trained(settings: Settings) -> FraudEngine:
    engine = FraudEngine.from_settings(settings)
    for i in range(200):
        tx = Transaction(f"e{i}", 1_700_000_000.0 + i, f"u{i % 7}", "m", 10.0 + i % 50, "EUR", "FR", "web", "d")
        scored = engine.score(tx, None, {}, decided_at=0.0)
        engine.learn_label(scored.snapshot, i % 9 == 0, event_id=tx.event_id)
    return engine


async def served_after_start(settings: Settings) -> tuple[int | None, str]:
    """(checkpoint version, model version) a worker with ``settings`` serves once started."""
    topology, runtime = build_worker(settings, web_enabled=False)
    await runtime.start()
    try:
        return runtime.lifecycle.serving_version, runtime.engine.model_version
    finally:
        await runtime.stop()
        topology.app.consumer._thread.thread_loop.close()  # noqa: SLF001 - never started (test_fraud_agents)


async def test_bumping_app_id_starts_fresh_state_and_restores_no_old_model(redis_url: str, tmp_path) -> None:
    suffix = uuid.uuid4().hex[:6]
    old = Settings(redis_url=SecretStr(redis_url), app_id=f"state-{suffix}-v1", data_dir=str(tmp_path))
    new = old.replace(app_id=f"state-{suffix}-v2")
    redis = redis_client(old)
    try:
        engine = trained(old)
        await RedisCheckpoints.on_redis(redis, old).save("fraud", engine.models(),
                                                          {"model_version": engine.model_version})
        await redis.set(RedisKeys.from_settings(old).user("alice"), b"state of the old version")

        assert await served_after_start(old) == (1, engine.model_version)  # the same app_id restores it
        assert await served_after_start(new) == (None, FraudEngine.from_settings(new).model_version)  # fresh
        assert await redis.get(RedisKeys.from_settings(new).user("alice")) is None
        assert await redis.get(RedisKeys.from_settings(old).user("alice")) == b"state of the old version"
    finally:
        await redis.aclose()


def test_a_key_prefix_of_its_own_is_refused() -> None:
    with pytest.raises(SettingsError, match="derived from app_id"):
        Settings.from_env({"STREAMSENSE_REDIS_KEY_PREFIX": "ss:v1"})
