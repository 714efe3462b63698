"""The fraud agents through Faust's test context (docs/userguide/testing.rst).

The agent's input is Faust's in-memory test channel; its outputs are captured where it hands them
to the producer. Redis is real. The broker tier is tests/integration.
"""

from __future__ import annotations

import json
import uuid

import pytest
from waiting import wait_until_async

from agents import batching
from agents.worker import build_worker
from schemas.settings import SecretStr, Settings

NOW = 1_795_514_400.0


@pytest.fixture
async def worker(redis_url: str, tmp_path, monkeypatch):
    settings = Settings(redis_url=SecretStr(redis_url), app_id=f"agents-test-{uuid.uuid4().hex[:6]}",
                        data_dir=str(tmp_path), batch_within_s=0.01, max_past_s=10 * 365 * 86400.0)
    topology, runtime = build_worker(settings, web_enabled=False)
    sent: list = []

    async def capture(app, emits):
        sent.extend(emits)

    monkeypatch.setattr(batching, "emit_all", capture)
    await runtime.start()
    yield topology, runtime, sent
    await runtime.stop()
    # Building Faust's consumer gives its thread an event loop that mode closes only when the thread
    # ran; the test context never starts it, so close it here (else: ResourceWarning, unclosed loop).
    topology.app.consumer._thread.thread_loop.close()  # noqa: SLF001 - no public handle in Faust 0.15


def agent_named(app, suffix: str):
    return next(agent for name, agent in app.agents.items() if name.endswith(suffix))


def tx(i: int) -> bytes:
    return json.dumps({"event_id": f"a{i}", "ts": NOW + i, "user_id": "bob", "merchant_id": "m1", "amount": 10.0,
                       "currency": "EUR", "country": "FR", "channel": "pos"}).encode()


async def wait_for(sent: list, decisions: int, dead_letters: int) -> None:
    """Until the agent has handed over that many decisions and dead letters (it also hands over
    examples for the learner, so a count of all outputs says nothing)."""
    def handed() -> bool:
        topics = [e.topic for e in sent]
        return topics.count("fraud-decisions") >= decisions and topics.count("dead-letters") >= dead_letters

    await wait_until_async(handed, 30, f"{decisions} decisions and {dead_letters} dead letters", interval=0.02)


async def test_each_event_becomes_a_decision_or_a_dead_letter(worker) -> None:
    topology, _, sent = worker
    agent = agent_named(topology.app, "score-transactions")
    async with agent.test_context() as test_agent:  # offsets 0..3 on partition 0
        for value in [tx(1), b"{broken", tx(2), tx(1)]:
            await test_agent.put(value, key=b"bob")
        await wait_for(sent, decisions=2, dead_letters=2)
    decisions = [json.loads(e.value)["event_id"] for e in sent if e.topic == "fraud-decisions"]
    dead = {json.loads(e.value)["offset"]: json.loads(e.value)["stage"] for e in sent if e.topic == "dead-letters"}
    assert sorted(decisions) == ["a1", "a2"]
    assert dead == {1: "validate", 3: "dedupe"}


async def test_an_exception_in_model_code_dead_letters_that_event_only(worker, monkeypatch) -> None:
    topology, runtime, sent = worker
    real_score = runtime.engine.score

    def flaky(tx, *args, **kwargs):
        if tx.event_id == "a2":
            raise ZeroDivisionError("injected")
        return real_score(tx, *args, **kwargs)

    monkeypatch.setattr(runtime.engine, "score", flaky)
    async with agent_named(topology.app, "score-transactions").test_context() as test_agent:
        for i in (1, 2, 3):
            await test_agent.put(tx(i), key=b"bob")
        await wait_for(sent, decisions=2, dead_letters=1)
    letters = [json.loads(e.value) for e in sent if e.topic == "dead-letters"]
    assert sorted(json.loads(e.value)["event_id"] for e in sent if e.topic == "fraud-decisions") == ["a1", "a3"]
    assert [(d["stage"], d["error"]) for d in letters] == [("score", "ZeroDivisionError: injected")]


async def test_a_non_finite_score_dead_letters_that_event_as_score(worker, monkeypatch) -> None:
    topology, runtime, sent = worker
    real_anomaly = runtime.engine.anomaly.score_one
    # A model gone bad for one input: the engine refuses its output (ScoreRejected), never decides with it.
    monkeypatch.setattr(runtime.engine.anomaly, "score_one",
                        lambda x: float("nan") if "f_poison" in x else real_anomaly(x))
    poisoned = json.dumps({**json.loads(tx(2)), "features": {"poison": 1.0}}).encode()
    async with agent_named(topology.app, "score-transactions").test_context() as test_agent:
        for value in (tx(1), poisoned, tx(3)):
            await test_agent.put(value, key=b"bob")
        await wait_for(sent, decisions=2, dead_letters=1)
    letters = [json.loads(e.value) for e in sent if e.topic == "dead-letters"]
    assert sorted(json.loads(e.value)["event_id"] for e in sent if e.topic == "fraud-decisions") == ["a1", "a3"]
    assert [(d["stage"], d["error"].split(":")[0]) for d in letters] == [("score", "ScoreRejected")]


async def test_any_exception_outside_model_code_dead_letters_only_the_events_that_cause_it(worker, monkeypatch) -> None:
    topology, runtime, sent = worker
    store = runtime.processor.store
    real_commit = store.commit

    async def refuses_a2(batch):
        if any("a2" in key for key in batch.guards):
            raise KeyError("injected at commit")  # not a Redis error: once acked-and-lost
        return await real_commit(batch)

    monkeypatch.setattr(store, "commit", refuses_a2)
    async with agent_named(topology.app, "score-transactions").test_context() as test_agent:
        for i in (1, 2, 3, 4):
            await test_agent.put(tx(i), key=b"bob")
        await wait_for(sent, decisions=3, dead_letters=1)
    letters = [json.loads(e.value) for e in sent if e.topic == "dead-letters"]
    assert sorted(json.loads(e.value)["event_id"] for e in sent if e.topic == "fraud-decisions") == ["a1", "a3", "a4"]
    assert [(d["offset"], d["stage"], d["error"]) for d in letters] == [(1, "batch", "KeyError: 'injected at commit'")]
