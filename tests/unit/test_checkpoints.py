"""Checkpoints: the newest valid one is restored; tampered, truncated or foreign ones are refused."""

from __future__ import annotations

import logging

from agents.checkpoint_store import FileCheckpoints
from online_models.engine import FraudEngine
from schemas.records import Transaction
from schemas.settings import Settings


def trained_engine(n: int) -> FraudEngine:
    engine = FraudEngine(Settings())
    for i in range(n):
        tx = Transaction(f"e{i}", 1_700_000_000.0 + i, f"u{i % 7}", "m", 10.0 + i % 50, "EUR", "FR", "web", "d")
        scored = engine.score(tx, None, {}, decided_at=0.0)
        engine.learn_label(scored.snapshot, i % 9 == 0, event_id=tx.event_id)
    return engine


def probe_scores(engine: FraudEngine) -> list[float]:
    txs = [Transaction(f"p{i}", 1_700_100_000.0, "probe", "pm", 5.0 * i, "EUR", "DE", "app", None) for i in range(10)]
    return [engine.score(tx, None, {}, decided_at=0.0).decision.score for tx in txs]


def test_the_newest_valid_checkpoint_restores_the_same_scores(tmp_path) -> None:
    store = FileCheckpoints(tmp_path, b"key")
    engine = trained_engine(300)
    assert store.save("fraud", engine.models(), {"model_version": engine.model_version, "offsets": {"t/0": 9}}) == 1
    fresh = FraudEngine(Settings())
    models, header = store.restore("fraud")
    fresh.load(models)
    assert probe_scores(fresh) == probe_scores(engine)
    assert header["version"] == 1 and header["offsets"] == {"t/0": 9} and fresh.model_version == engine.model_version


def test_tampered_truncated_and_foreign_checkpoints_are_refused_with_a_log_line(tmp_path, caplog) -> None:
    store = FileCheckpoints(tmp_path, b"key")
    good = trained_engine(100)
    store.save("fraud", good.models(), {"model_version": good.model_version})
    for _ in range(3):
        store.save("fraud", trained_engine(50).models(), {})
    blob = store.path("fraud", 4).read_bytes()
    store.path("fraud", 4).write_bytes(blob.replace(b"classifier", b"classifiex", 1))  # tampered
    store.path("fraud", 3).write_bytes(store.path("fraud", 3).read_bytes()[:-100])  # truncated
    FileCheckpoints(tmp_path, b"other-key").save("fraud", trained_engine(10).models(), {})  # v5, foreign key
    with caplog.at_level(logging.ERROR):
        models, header = store.restore("fraud")
    assert header["version"] == 2
    refused = [r.getMessage() for r in caplog.records if "refused checkpoint" in r.getMessage()]
    assert len(refused) == 3 and all("signature does not verify" in m for m in refused)


def test_no_valid_checkpoint_means_the_fallback_model(tmp_path) -> None:
    store = FileCheckpoints(tmp_path, b"key")
    assert store.restore("fraud") is None
    store.save("fraud", {"x": 1}, {})
    assert FileCheckpoints(tmp_path, b"wrong").restore("fraud") is None


def test_only_the_newest_versions_are_kept(tmp_path) -> None:
    store = FileCheckpoints(tmp_path, b"key", keep=2)
    for i in range(5):
        store.save("reco", {"i": i}, {})
    assert store.versions("reco") == [4, 5] and store.restore("reco")[0] == {"i": 4}
