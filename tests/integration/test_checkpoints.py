"""The checkpoint registry (real Redis): newest valid restored; tampered, truncated, foreign, unloadable
refused; signing keys rotate (old checkpoints still load, new ones signed with the new key); a signed
blob moved to another version, role or deployment is refused."""

from __future__ import annotations

import asyncio
import logging
import pickle
import uuid

import pytest

from agents.clients import redis_client
from agents.lifecycle import ModelLifecycle
from agents.stores.checkpoints import RedisCheckpoints
from agents.stores.keys import RedisKeys
from online_models.checkpoints import CheckpointRejected, read_header
from online_models.engine import FraudEngine
from schemas.keyring import KeyRing, Pseudonyms
from schemas.records import Transaction
from schemas.settings import SecretStr, Settings

pytestmark = pytest.mark.integration
OLD, NEW = ("2026-01", b"o" * 32), ("2026-06", b"n" * 32)


def ring(*keys: tuple[str, bytes]) -> KeyRing:
    return KeyRing(keys)


def trained_engine(n: int) -> FraudEngine:
    engine = FraudEngine.from_settings(Settings())
    for i in range(n):
        tx = Transaction(f"e{i}", 1_700_000_000.0 + i, f"u{i % 7}", "m", 10.0 + i % 50, "EUR", "FR", "web", "d")
        scored = engine.score(tx, None, {}, decided_at=0.0)
        engine.learn_label(scored.snapshot, i % 9 == 0, event_id=tx.event_id)
    return engine


def probe_scores(engine: FraudEngine) -> list[float]:
    txs = [Transaction(f"p{i}", 1_700_100_000.0, "probe", "pm", 5.0 * i, "EUR", "DE", "app", None) for i in range(10)]
    return [engine.score(tx, None, {}, decided_at=0.0).decision.score for tx in txs]


@pytest.fixture
async def registry(redis_url: str):
    redis = redis_client(Settings(redis_url=SecretStr(redis_url)))
    keys = RedisKeys(f"ss:ck:{uuid.uuid4().hex[:6]}", Pseudonyms("p0", b"p" * 32))
    yield redis, keys
    await redis.aclose()


async def test_the_newest_valid_checkpoint_restores_the_same_scores(registry) -> None:
    store = RedisCheckpoints(*registry, ring(OLD), "app")
    engine = trained_engine(300)
    assert await store.save("fraud", engine.models(), {"model_version": engine.model_version,
                                                       "offsets": {"t/0": 9}}) == 1
    fresh = FraudEngine.from_settings(Settings())
    models, header = await store.restore("fraud")
    fresh.load(models)
    assert probe_scores(fresh) == probe_scores(engine)
    assert header["version"] == 1 and header["offsets"] == {"t/0": 9} and fresh.model_version == engine.model_version


async def test_tampered_truncated_and_foreign_checkpoints_are_refused_with_a_log_line(registry, caplog) -> None:
    redis, keys = registry
    store = RedisCheckpoints(redis, keys, ring(OLD), "app")
    await store.save("fraud", trained_engine(100).models(), {})
    for _ in range(2):
        await store.save("fraud", trained_engine(50).models(), {})
    blob = await redis.get(keys.checkpoint("fraud", 3))
    middle = len(blob) // 2
    tampered = blob[:middle] + bytes([blob[middle] ^ 1]) + blob[middle + 1:]
    await redis.set(keys.checkpoint("fraud", 3), tampered)
    await redis.set(keys.checkpoint("fraud", 2), blob[:-100])  # truncated
    foreign = RedisCheckpoints(redis, keys, ring(("2026-01", b"x" * 32)), "app")
    await foreign.save("fraud", {"x": 1}, {})  # v4, foreign key
    with caplog.at_level(logging.ERROR):
        models, header = await store.restore("fraud")
    assert header["version"] == 1
    refused = [r.getMessage() for r in caplog.records if "refused checkpoint" in r.getMessage()]
    assert len(refused) == 3 and all("signature does not verify" in m for m in refused)


async def test_no_valid_checkpoint_means_the_fallback_model(registry) -> None:
    store = RedisCheckpoints(*registry, ring(OLD), "app")
    assert await store.restore("fraud") is None
    await store.save("fraud", {"x": 1}, {})
    assert await RedisCheckpoints(*registry, ring(("2026-01", b"w" * 32)), "app").restore("fraud") is None


async def test_rolling_back_moves_the_pointer_to_a_verified_version_and_old_ones_are_pruned(registry) -> None:
    store = RedisCheckpoints(*registry, ring(OLD), "app", keep=3)
    for i in range(5):
        await store.save("fraud", {"i": i}, {})
    assert await store.versions("fraud") == [3, 4, 5] and await store.latest("fraud") == 5
    await store.point_to("fraud", 4)
    assert (await store.restore("fraud"))[0] == {"i": 3}


async def test_rotation_old_checkpoints_load_new_ones_use_the_new_key_moved_blobs_are_refused(registry,
                                                                                            caplog) -> None:
    redis, keys = registry
    before = RedisCheckpoints(redis, keys, ring(OLD), "app")
    await before.save("fraud", {"v": 1}, {})
    rotated = RedisCheckpoints(redis, keys, ring(NEW, OLD), "app")  # the new key first, the old one kept
    assert (await rotated.restore("fraud"))[0] == {"v": 1}  # signed with the old key: still loads
    await rotated.save("fraud", {"v": 2}, {})
    assert read_header(await redis.get(keys.checkpoint("fraud", 2)))["kid"] == NEW[0]
    assert (await rotated.restore("fraud"))[0] == {"v": 2}
    assert await RedisCheckpoints(redis, keys, ring(OLD), "app").load("fraud", 1)  # the old ring reads v1...
    with pytest.raises(CheckpointRejected, match="not configured"):
        await RedisCheckpoints(redis, keys, ring(OLD), "app").load("fraud", 2)  # ...but not what NEW signed
    with pytest.raises(CheckpointRejected, match="not configured"):
        await RedisCheckpoints(redis, keys, ring(NEW), "app").load("fraud", 1)  # OLD retired: v1 refused

    # A valid, signed blob copied into another slot: another version, another role, another app id.
    v1 = await redis.get(keys.checkpoint("fraud", 1))
    await redis.set(keys.checkpoint("fraud", 2), v1)  # replay the old model as the newest version
    await redis.set(keys.checkpoint("anomaly", 1), v1)
    await redis.zadd(keys.checkpoint_index("anomaly"), {"1": 1})
    with pytest.raises(CheckpointRejected, match="signed for version 1, read as version 2"):
        await rotated.load("fraud", 2)
    with pytest.raises(CheckpointRejected, match="signed for role fraud, read as role anomaly"):
        await rotated.load("anomaly", 1)
    with pytest.raises(CheckpointRejected, match="signed for app_id app, read as app_id staging"):
        await RedisCheckpoints(redis, keys, ring(NEW, OLD), "staging").load("fraud", 1)
    with caplog.at_level(logging.ERROR):
        models, header = await rotated.restore("fraud")
    assert header["version"] == 1 and models == {"v": 1}  # the moved v2 is skipped, the genuine v1 serves
    assert any("refused checkpoint fraud v2: signed for version 1" in r.getMessage() for r in caplog.records)


class Unloadable:
    """Pickles fine, fails to unpickle: what a checkpoint of a class since renamed or changed does."""

    def __reduce__(self):
        return int, ("not a number",)


async def test_a_checkpoint_that_verifies_but_cannot_be_loaded_is_skipped_for_the_next_older(registry, caplog) -> None:
    store = RedisCheckpoints(*registry, ring(OLD), "app")
    engine = trained_engine(80)
    await store.save("fraud", engine.models(), {"model_version": engine.model_version})
    await store.save("fraud", {"lifecycle": Unloadable(), "anomaly": None}, {})  # v2: signed, not loadable
    await store.save("fraud", {"not": "models"}, {})  # v3: loads, but is not what the engine holds
    served = FraudEngine.from_settings(Settings())
    lifecycle = ModelLifecycle(served, None, store)
    with caplog.at_level(logging.ERROR):
        await lifecycle.restore()
    refused = [r.getMessage() for r in caplog.records if "refused checkpoint" in r.getMessage()]
    assert any("fraud v2" in m and "cannot be loaded" in m and "ValueError" in m for m in refused), refused
    assert any("fraud v3" in m and "cannot be installed" in m for m in refused), refused
    assert lifecycle.serving_version == 1 and served.model_version == engine.model_version
    assert probe_scores(served) == probe_scores(engine)
    with pytest.raises(CheckpointRejected, match="cannot be loaded"):  # and the follower refuses it too
        await store.load("fraud", 2)


def poisoned(engine: FraudEngine) -> FraudEngine:
    """A model whose parameters are no longer finite (what a value near 1.7e308 did before bounds)."""
    engine.classifier.lr._weights["f_V1"] = float("nan")
    return engine


async def test_a_checkpoint_with_a_non_finite_parameter_is_neither_published_nor_loaded(registry, caplog,
                                                                                       monkeypatch) -> None:
    redis, keys = registry
    store = RedisCheckpoints(redis, keys, ring(OLD), "app")
    await store.save("fraud", trained_engine(50).models(), {})
    with pytest.raises(CheckpointRejected, match="not finite"):
        await store.save("fraud", poisoned(trained_engine(50)).models(), {})
    assert await redis.get(keys.checkpoint("fraud", 2)) is None and await store.latest("fraud") == 1
    # A poisoned blob that verifies (written before the check existed, or by a bug) is not loaded.
    monkeypatch.setattr("online_models.checkpoints.finite_pickle", lambda models: pickle.dumps(models, protocol=5))
    assert await store.save("fraud", poisoned(trained_engine(50)).models(), {}) == 3
    monkeypatch.undo()
    with pytest.raises(CheckpointRejected, match="not finite"):
        await store.point_to("fraud", 3)
    with caplog.at_level(logging.ERROR):
        models, header = await store.restore("fraud")
    assert header["version"] == 1
    assert any("refused checkpoint fraud v3" in r.getMessage() and "not finite" in r.getMessage()
               for r in caplog.records)


async def test_pointing_back_undoes_a_move_unless_the_pointer_moved_on(registry) -> None:
    store = RedisCheckpoints(*registry, ring(OLD), "app")
    for i in range(3):
        await store.save("fraud", {"i": i}, {})
    await store.point_to("fraud", 1)
    assert await store.point_back("fraud", 1, 3) and await store.latest("fraud") == 3  # undone
    await store.point_to("fraud", 2)
    await store.save("fraud", {"i": 3}, {})  # a learner publishes v4 meanwhile
    assert not await store.point_back("fraud", 2, 3) and await store.latest("fraud") == 4  # kept


class Position:
    """What the lifecycle asks of a learner: where it is, and where to resume."""

    def position(self) -> dict[str, int]:
        return {}

    def resume_after(self, offsets: dict[str, int]) -> None:
        pass


async def test_a_follow_during_a_publish_does_not_load_the_version_being_published(registry, caplog) -> None:
    # The learner's save moves the pointer before the version is known to be its own; a follow that
    # read the pointer then took it for another worker's and loaded it again (the learner's log said
    # "serving" its own version: seen in test_two_workers).
    store = RedisCheckpoints(*registry, ring(OLD), "app")
    engine = trained_engine(40)
    lifecycle = ModelLifecycle(engine, Position(), store)
    await lifecycle.restore()
    scored = engine.score(Transaction("e-new", 1_700_000_100.0, "u1", "m", 12.0, "EUR", "FR", "web", "d"), None, {},
                          decided_at=0.0)
    engine.learn_label(scored.snapshot, True, event_id="e-new")  # something to publish
    with caplog.at_level(logging.INFO):
        publishing = asyncio.create_task(lifecycle.publish_if_learned())
        while not publishing.done():
            await lifecycle.follow()
        await publishing
    messages = [r.getMessage() for r in caplog.records]
    assert any("published fraud checkpoint v1" in m for m in messages), messages
    assert not any("serving fraud checkpoint" in m for m in messages), messages
