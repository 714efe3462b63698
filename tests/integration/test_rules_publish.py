"""`streamsense rules publish`: a running worker serves the published rule set, refuses a broken one,
and switches a rule that fires far more than its backtest said to shadow, with a drift signal and a
metric."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis

from agents.stores.keys import RedisKeys
from online_models.rules import default_rule_set
from schemas.settings import Settings
from tests.waiting import wait_until_async

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(rules_watch_window=40, rules_watch_min_seen=20)


def streamsense(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agents", *args], env={**os.environ, **settings.to_env()},
                          capture_output=True, text=True, timeout=60)


def rules_file(tmp_path, version: str, *extra: dict) -> str:
    doc = default_rule_set().to_doc() | {"version": version}
    doc["rules"] += list(extra)
    path = tmp_path / f"{version}.json"
    path.write_text(json.dumps(doc))
    return str(path)


def metric(settings: Settings, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name))


class Probe:
    """Sends transactions and reads their decisions (and any drift signals) back."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent = 0
        self.signals: list[dict] = []
        self.decided: dict[str, dict] = {}

    async def __aenter__(self) -> Probe:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap_servers)
        self.consumer = AIOKafkaConsumer(self.settings.topics.fraud_decisions, self.settings.topics.drift_signals,
                                         bootstrap_servers=self.settings.bootstrap_servers,
                                         auto_offset_reset="earliest")
        await self.producer.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.producer.stop()
        await self.consumer.stop()

    async def decide(self, user_id: str, n: int = 1) -> list[dict]:
        ids = []
        for _ in range(n):
            self.sent += 1
            event_id = f"{user_id}-{self.sent}"
            doc = {"event_id": event_id, "ts": time.time() - 1, "user_id": user_id, "merchant_id": "m",
                   "amount": 20.0, "currency": "EUR", "country": "FR", "channel": "web"}
            await self.producer.send(self.settings.topics.transactions, json.dumps(doc).encode(), key=user_id.encode())
            ids.append(event_id)
        await self.producer.flush()
        deadline = time.monotonic() + 60
        while not self.decided.keys() >= set(ids) and time.monotonic() < deadline:
            await self.poll()
        assert self.decided.keys() >= set(ids), f"decided {len(self.decided.keys() & set(ids))} of {len(ids)}"
        return [self.decided[i] for i in ids]

    async def poll(self) -> list[dict]:
        """Read what has arrived; returns the drift signals seen so far."""
        for tp, records in (await self.consumer.getmany(timeout_ms=500)).items():
            for r in records:
                doc = json.loads(r.value)
                if tp.topic == self.settings.topics.drift_signals:
                    self.signals.append(doc)
                else:
                    self.decided[doc["event_id"]] = doc
        return self.signals


async def published_then_refused(settings: Settings, tmp_path) -> None:
    block = {"name": "blocked_user", "when": "user_id == 'mallory'", "action": "decline"}
    odd = {"name": "odd_user", "when": "user_id == 'oscar'", "action": "review"}
    async with Probe(settings) as probe:
        before = (await probe.decide("mallory"))[0]
        assert before["rules"]["version"] == "default-1" and before["decision"] == "approve"

        done = streamsense(settings, "rules", "publish", rules_file(tmp_path, "t-2", block, odd))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"published": "t-2", "rules": 7, "shadow": []}

        async def serving_t2() -> dict | None:
            d = (await probe.decide("mallory"))[0]
            return d if d["rules"]["version"] == "t-2" else None

        d = await wait_until_async(serving_t2, timeout=30, what="a decision made with rule set t-2")
        assert d["decision"] == "decline" and d["rules"]["fired"] == ["blocked_user"]
        assert "blocked_user" in [r["name"] for r in d["reasons"] if r["kind"] == "rule"]
        assert (await probe.decide("trent"))[0]["decision"] == "approve"
        reviewed = (await probe.decide("oscar"))[0]
        assert reviewed["decision"] == "review" and reviewed["rules"]["fired"] == ["odd_user"]

        # A document that does not load (written past the command) is refused; t-2 keeps serving.
        redis = Redis.from_url(settings.redis_url.get_secret_value())
        await redis.set(RedisKeys.from_settings(settings).rule_set("fraud"), b'{"version": "t-3", "rules": [1]}')
        await redis.aclose()
        await wait_until_async(lambda: metric(settings, "streamsense_rule_sets_refused_total") >= 1, timeout=30,
                               what="the worker to refuse the broken rule set")
        assert (await probe.decide("mallory"))[0]["rules"]["version"] == "t-2"

    consumer = AIOKafkaConsumer(settings.topics.rule_sets, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        records = [r for batch in (await consumer.getmany(timeout_ms=5000)).values() for r in batch]
    finally:
        await consumer.stop()
    assert [(r.key, json.loads(r.value)["version"]) for r in records] == [(b"fraud", "t-2")]
    cases = AIOKafkaConsumer(settings.topics.review_cases, bootstrap_servers=settings.bootstrap_servers,
                             auto_offset_reset="earliest")
    await cases.start()
    try:  # the review decision's case, emitted with it (before its batch was acknowledged)
        opened = [json.loads(r.value) for batch in (await cases.getmany(timeout_ms=5000)).values() for r in batch]
    finally:
        await cases.stop()
    assert [(c["event_id"], c["status"], c["decision"]) for c in opened] == [
        (reviewed["event_id"], "open", reviewed)]


def test_a_published_rule_set_is_served_and_a_broken_one_refused(settings: Settings, worker, tmp_path) -> None:
    asyncio.run(published_then_refused(settings, tmp_path))


async def runaway_rule(settings: Settings, tmp_path) -> None:
    typo = {"name": "typo", "when": "amount > 2", "action": "decline", "expected_rate": 0.001}
    assert streamsense(settings, "rules", "publish", rules_file(tmp_path, "t-typo", typo)).returncode == 0
    async with Probe(settings) as probe:
        async def serving() -> bool:
            return (await probe.decide("warmup"))[0]["rules"]["version"] == "t-typo"

        await wait_until_async(serving, timeout=30, what="the worker to serve t-typo")
        decisions = await probe.decide("victim", n=60)
        await wait_until_async(probe.poll, timeout=30, what="the rule's drift signal")
    declined = [d for d in decisions if d["decision"] == "decline"]
    after = decisions[len(declined):]
    # Declined until the watch had seen min_seen decisions, then only reported in shadow.
    assert 1 <= len(declined) <= settings.rules_watch_min_seen and after
    assert all("typo" in d["rules"]["fired"] for d in declined)
    assert all("typo" not in d["rules"]["fired"] and d["rules"]["shadow"] == ["typo"] for d in after)
    assert all(d["decision"] == "approve" for d in after if not d["rules"]["fired"])
    signal = next(s for s in probe.signals if s["target"] == "rule")
    assert signal["name"] == "typo" and signal["action"] == "switched to shadow" and signal["statistic"] > 0.5
    assert metric(settings, 'streamsense_rules_auto_shadowed_total{rule="typo"}') == 1


def test_a_rule_firing_far_above_its_backtest_rate_is_switched_to_shadow(settings: Settings, worker,
                                                                           tmp_path) -> None:
    asyncio.run(runaway_rule(settings, tmp_path))


async def labelled_then_backtested(settings: Settings, tmp_path) -> dict:
    async with Probe(settings) as probe:
        decided = []
        for i in range(8):
            decided += await probe.decide(f"shopper-{i}")
        for i, d in enumerate(decided):
            label = {"event_id": d["event_id"], "is_fraud": i % 2 == 0, "ts": time.time()}
            await probe.producer.send(settings.topics.fraud_labels, json.dumps(label).encode(),
                                      key=d["event_id"].encode())
        await probe.producer.flush()
    candidate = rules_file(tmp_path, "t-bt", {"name": "all_big", "when": "amount >= 20", "action": "decline"})

    def report() -> dict | None:
        done = streamsense(settings, "rules", "backtest", candidate, "--since", str(time.time() - 3600), "--json")
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        return found if found["events"] == len(decided) else None

    return await wait_until_async(lambda: asyncio.to_thread(report), timeout=60,
                                  what="the backtest to see every labelled snapshot")


def test_backtest_reads_the_labelled_snapshots_the_workers_kept(settings: Settings, worker, tmp_path) -> None:
    report = asyncio.run(labelled_then_backtested(settings, tmp_path))
    assert report["live_version"] == "default-1" and report["candidate_version"] == "t-bt"
    assert report["frauds"] == 4 and report["rules"]["all_big"]["hits"] == 8
    assert report["rules"]["all_big"]["precision"] == 0.5 and report["rules"]["all_big"]["recall"] == 1.0
    assert report["changes"]["approve"]["decline"] == 8 and report["candidate"]["total_cost"] == 40.0
