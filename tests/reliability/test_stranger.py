"""A stranger on the cluster and on the HTTP port, written from README.md, SECURITY.md and the
JSON Schemas alone (issue 18's and issue 19's last lines): a plain aiokafka producer sends a
seeded, mixed, hostile burst on every input topic of a running worker, then labels it, floods
one item and impersonates another user; an HTTP client tries the doors the README says are
closed. Every input must end as exactly one outcome, nothing may be lost or poisoned, and no one
may steer another user's answer. What it found still open is said where it is left unasserted."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import secrets
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from scenario import create_all_topics, start, user_history

from agents.dev.probes import metric, ready
from schemas.settings import Settings

pytestmark = pytest.mark.integration
DAY = 86400.0
MB = 1024 * 1024
ENV = {"STREAMSENSE_CHECKPOINT_INTERVAL_S": "1"}



# ---------------------------------------------------------------- what we send, what comes back

@dataclass
class Sent:
    """One produced message and the outcome the README promises for it: ``decide`` (one decision
    for ``ref``), ``answer`` (one recommendation for ``ref``), ``dead`` (one dead letter at its
    offset, and no decision for ``ref``), ``quiet`` (learned or parked: no dead letter), ``either``
    (the README leaves it open: exactly one of a decision and a dead letter)."""
    topic: str
    key: bytes | None
    raw: bytes
    expect: str
    ref: str | None = None
    partition: int = -1
    offset: int = -1


def strict_json(raw: bytes):
    """Output must be strict JSON: a NaN or Infinity in a decision fails here."""
    def refuse(constant: str):
        raise ValueError(f"non-finite {constant} in an output message")
    return json.loads(raw, parse_constant=refuse)


@dataclass
class Outputs:
    """Everything on fraud-decisions, recommendations and dead-letters, from the beginning."""
    settings: Settings
    decisions: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    recommendations: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    dead: dict[tuple[str, int, int], list[dict]] = field(default_factory=lambda: defaultdict(list))
    consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        t = self.settings.topics
        self.consumer = AIOKafkaConsumer(t.fraud_decisions, t.recommendations, t.dead_letters,
                                         bootstrap_servers=self.settings.bootstrap_servers,
                                         auto_offset_reset="earliest", enable_auto_commit=False)
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def until(self, done: Callable[[], bool], timeout: float, idle_s: float = 1.5) -> bool:
        """Read until ``done()`` holds and nothing more came for ``idle_s``; False on timeout."""
        t, deadline, idle_since = self.settings.topics, time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            batch = await self.consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    doc = strict_json(r.value)
                    if tp.topic == t.dead_letters:
                        self.dead[(doc["source_topic"], doc["partition"], doc["offset"])].append(doc)
                    elif tp.topic == t.fraud_decisions:
                        self.decisions[doc["event_id"]].append(doc)
                    else:
                        self.recommendations[doc["request_id"]].append(doc)
            idle_since = time.monotonic() if batch else idle_since
            if done() and time.monotonic() - idle_since >= idle_s:
                return True
        return False

    def outcome_of(self, s: Sent) -> bool:
        if s.expect == "decide":
            return s.ref in self.decisions
        if s.expect == "answer":
            return s.ref in self.recommendations
        if s.expect == "either":
            return s.ref in self.decisions or (s.topic, s.partition, s.offset) in self.dead
        if s.expect == "dead":
            return (s.topic, s.partition, s.offset) in self.dead
        return True  # quiet: checked by the absence of a dead letter

    def all_out(self, sent: list[Sent]) -> Callable[[], bool]:
        return lambda: all(self.outcome_of(s) for s in sent)


async def send(settings: Settings, messages: list[Sent]) -> list[Sent]:
    """Produce in order, one at a time (acks=all), and note where each landed."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                max_request_size=4 * MB)
    await producer.start()
    try:
        for s in messages:
            meta = await producer.send_and_wait(s.topic, s.raw, key=s.key)
            s.partition, s.offset = meta.partition, meta.offset
    finally:
        await producer.stop()
    return messages


def with_outputs(settings: Settings, body: Callable[[Outputs], Awaitable[None]]) -> None:
    """Run ``body`` with every output read from the beginning."""
    async def run() -> None:
        out = Outputs(settings)
        await out.start()
        try:
            await body(out)
        finally:
            await out.stop()
    asyncio.run(run())


def wait_ready(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready(port):
        assert time.monotonic() < deadline, "the worker never became ready"
        time.sleep(0.3)


def dumps(doc) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


def api_key(client: str, scopes: str) -> tuple[str, str]:
    """A token and its STREAMSENSE_API_KEYS entry, as the README describes them (`client:scope+scope:sha256hex`)."""
    token = secrets.token_urlsafe(32)
    return token, f"{client}:{scopes}:{hashlib.sha256(token.encode()).hexdigest()}"


def http(port: int, method: str, path: str, token: str | None = None, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                     headers={**({"Authorization": f"Bearer {token}"} if token else {}),
                                              **({"Content-Type": "application/json"} if body is not None else {}),
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def assert_refusal(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict:
    assert status == expected, (status, body[:300])
    doc = strict_json(body)
    assert {"error", "message", "field", "request_id"} <= doc.keys(), doc
    assert headers.get("X-Request-Id") == doc["request_id"]
    return doc


OPS = api_key("ops", "admin")
ENV["STREAMSENSE_API_KEYS"] = OPS[1]


# ---------------------------------------------------------------- the hostile burst, seeded

class Burst:
    """Builds the messages; every id is unique unless a case repeats one on purpose."""

    def __init__(self, settings: Settings, seed: int) -> None:
        self.t, self.rng, self.now, self.n = settings.topics, random.Random(seed), time.time(), 0
        self.out: list[Sent] = []

    def uid(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    def tx(self, user: str | None = None, **over) -> dict:
        doc = {"event_id": self.uid("tx"), "ts": self.now - 600 + self.rng.uniform(0, 300),
               "user_id": user or f"h{self.rng.randrange(9)}", "merchant_id": f"m{self.rng.randrange(5)}",
               "amount": round(self.rng.uniform(1, 400), 2), "currency": "EUR", "country": "FR",
               "channel": "web", "device_id": "d-1"}
        doc.update(over)
        return doc

    def add(self, topic: str, doc_or_raw, expect: str, key: bytes | None | str = "own", ref: str | None = None):
        raw = doc_or_raw if isinstance(doc_or_raw, bytes) else dumps(doc_or_raw)
        if key == "own":
            owner = "event_id" if topic == self.t.fraud_labels else "user_id"
            value = doc_or_raw.get(owner)  # a missing or wrong-typed owner: some key all the same
            key = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else b"h1"
        if ref is None and isinstance(doc_or_raw, dict):
            ref = doc_or_raw.get("request_id", doc_or_raw.get("event_id"))
            ref = ref if isinstance(ref, str) else None
        self.out.append(Sent(topic, key, raw, expect, ref))
        return doc_or_raw

    def valid_transactions(self) -> list[dict]:
        """Ordinary ones and the edges the README allows."""
        boundaries = [
            {"amount": 0}, {"amount": 1_000_000_000}, {"ts": self.now + 3000}, {"ts": self.now - 29 * DAY},
            {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now - 120))},
            {"ts": time.strftime("%Y-%m-%dT%H:%M:%S+05:30", time.gmtime(self.now - 120 + 5.5 * 3600))},
            {"ts": int(self.now - 100)},
            {"features": {f"f{i}": self.rng.uniform(-1e9, 1e9) for i in range(256)}},
            {"features": {"x" * 64: 1e9, "y.z-1_": -1e9}}, {"features": {}},
            {"loyalty": "gold", "nested": {"deep": [1, [2, [3]]]}},  # added fields: ignored and counted
            {"channel": "metaverse"}, {"channel": "c" * 32},  # unknown channel: decided, reason names it
            {"merchant_id": "m" * 128}, {"event_id": "e" * 128},
            {"event_id": "tx with spaces and ünïcödé"},
        ]
        docs = [self.tx(**over) for over in boundaries]
        docs += [self.tx(user="u" * 128), self.tx(user="ユーザー"), self.tx(user="\U0001F600" * 128)]
        docs += [self.tx() for _ in range(40)]
        return docs

    def hostile_transactions(self) -> list[tuple[bytes | dict, bytes | None | str]]:
        """(message, key): each is one dead letter by the README's contract."""
        base = self.tx
        iso_naive = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.now))
        cases: list[tuple[bytes | dict, bytes | None | str]] = [
            (b"", b"h1"), (b"\xff\xfe\x00\x80garbage", b"h1"), (b'{"event_id": "\xc3\x28"}', b"h1"),
            (b"[]", b"h1"), (b"[1, 2, 3]", b"h1"), (b"42", b"h1"), (b"null", b"h1"), (b"true", b"h1"),
            (b'"a string"', b"h1"), (b"[" * 20000 + b"]" * 20000, b"h1"),
            (b'{"a":' * 5000 + b"1" + b"}" * 5000, b"h1"), (b'{"event_id": "x", ', b"h1"),
            (b'{"event_id": "pad", "user_id": "h1", "pad": "' + b"x" * (3 * MB) + b'"}', b"h1"),
            (b"\x00" * 1000, b"h1"),
        ]
        for name in ("event_id", "ts", "user_id", "merchant_id", "amount", "currency", "country", "channel"):
            doc = base()
            del doc[name]
            cases.append((doc, "own"))
        wrong = [("event_id", 123), ("event_id", None), ("ts", "yesterday"), ("ts", True), ("ts", None),
                 ("ts", [1]), ("user_id", ["h1"]), ("merchant_id", None), ("amount", "42.5"), ("amount", True),
                 ("amount", None), ("currency", "eur"), ("currency", "EURO"), ("country", 1), ("country", "FRA"),
                 ("channel", 5), ("channel", ""), ("channel", "c" * 33), ("channel", "we\nb"), ("device_id", 7),
                 ("device_id", ""), ("features", [1]), ("features", {"a": "1"}), ("features", {"a": True}),
                 ("features", {"a": None}), ("features", {"a": {"b": 1}}), ("features", "x")]
        cases += [(base(**{k: v}), b"h1" if k == "user_id" else "own") for k, v in wrong]
        numbers = [("amount", float("nan")), ("amount", float("inf")), ("amount", -float("inf")),
                   ("amount", 1e308), ("amount", -1e308), ("amount", -0.01), ("amount", 1_000_000_000.01),
                   ("ts", float("nan")), ("ts", float("inf")), ("ts", 1e308), ("ts", -5), ("ts", 0),
                   ("ts", 1e11), ("ts", self.now * 1000), ("ts", self.now + 3700), ("ts", self.now - 31 * DAY),
                   ("features", {"x": float("nan")}), ("features", {"x": float("inf")}), ("features", {"x": 1e308}),
                   ("features", {"x": -1e308}), ("features", {"x": 1e9 + 1}),
                   ("features", {f"f{i}": 1.0 for i in range(257)}), ("features", {"x" * 65: 1.0}),
                   ("features", {"a b": 1.0}), ("features", {"": 1.0}), ("features", {"é": 1.0})]
        cases += [(base(**{k: v}), "own") for k, v in numbers]
        raw_numbers = [b'"amount": 1e400', b'"amount": -1e400', b'"amount": ' + b"9" * 5000,
                       b'"ts": 1e400', b'"amount": 4.2e-400e', b'"amount": 0x10']
        for fragment in raw_numbers:
            doc = base()
            text = dumps(doc).replace(b'"amount": ' + json.dumps(doc["amount"]).encode(), b"")
            if fragment.startswith(b'"ts"'):
                text = dumps(doc).replace(b'"ts": ' + json.dumps(doc["ts"]).encode(), fragment)
            else:
                text = text.replace(b'"currency"', fragment + b', "currency"')
            cases.append((text, doc["user_id"].encode()))
        for ts in ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", iso_naive, "2026-13-45T99:99:99Z",
                   "+275760-09-13T00:00:00Z", "now", "", "1" * 65,
                   time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now + DAY)),
                   time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now - 31 * DAY))):
            cases.append((base(ts=ts), "own"))
        for name in ("event_id", "merchant_id", "device_id", "channel"):  # lone surrogates
            cases.append((base(**{name: "a\ud800b"}), "own"))
        cases.append((base(user_id="\udfff"), b"h1"))
        cases += [(base(event_id="e" * 129), "own"), (base(user_id="u" * 10_000), "own"),
                  (base(merchant_id="m" * 129), "own"), (base(user_id="u\x00x"), "own"), (base(user_id="u\nx"), "own"),
                  (base(event_id="\x7f"), "own"), (base(event_id=""), "own")]
        cases += [(base(), None), (base(user_id="h1"), b"h2"), (base(user_id="h1"), b""), (base(user_id="h1"), b"H1"),
                  (base(user_id="h1"), b"\xff"), (base(user_id="h1"), b"h1 ")]
        return cases

    def transactions(self) -> tuple[list[dict], list[Sent]]:
        valid = self.valid_transactions()
        hostile = self.hostile_transactions()
        order = [("valid", v) for v in valid] + [("hostile", h) for h in hostile]
        self.rng.shuffle(order)
        first = {}
        for kind, item in order:
            if kind == "valid":
                first[item["event_id"]] = self.add(self.t.transactions, item, "decide")
            else:
                msg, key = item
                if isinstance(msg, dict) and str(msg.get("event_id")).startswith("tx-"):
                    msg["event_id"] = f"bad-{msg['event_id']}"  # never one of the valid ids
                self.add(self.t.transactions, msg, "dead", key=key)
        # the same event_id again: as is, and with another payload (same user, and another user)
        again = self.rng.sample(sorted(first), 6)
        for event_id in again[:2]:
            self.add(self.t.transactions, first[event_id], "dead")
        for event_id in again[2:4]:
            self.add(self.t.transactions, {**first[event_id], "amount": 999_999.0}, "dead")
        for event_id in again[4:]:
            self.add(self.t.transactions, {**first[event_id], "user_id": "h-other", "channel": "atm"}, "dead")
        return valid, self.out[:]

    def labels_ahead_and_ghosts(self) -> list[Sent]:
        """Labels for events nobody sent (parked) and for transactions sent after them (learned)."""
        mark = len(self.out)
        for _ in range(5):
            ghost = {"event_id": self.uid("ghost"), "is_fraud": True, "ts": self.now - 10}
            self.add(self.t.fraud_labels, ghost, "quiet")
        for i in range(5):
            doc = self.tx(user=f"early{i}")
            self.add(self.t.fraud_labels, {"event_id": doc["event_id"], "is_fraud": i % 2 == 0, "ts": self.now - 5},
                     "quiet")
            self.add(self.t.transactions, doc, "decide")
        return self.out[mark:]

    def hostile_labels(self, some_event: str) -> list[Sent]:
        mark = len(self.out)
        label = {"event_id": some_event, "is_fraud": True, "ts": self.now - 5}
        for over, key in [({"is_fraud": "yes"}, "own"), ({"is_fraud": 1}, "own"), ({"is_fraud": None}, "own"),
                          ({"ts": "9999-12-31T23:59:59Z"}, "own"), ({"ts": float("nan")}, "own"),
                          ({}, None), ({}, b"another"), ({"event_id": "e" * 129}, "own"),
                          ({"event_id": "a\ud800"}, "own")]:
            doc = {**label, **over}
            if over.get("event_id") is None:
                doc["event_id"] = f"bad-{self.uid('lbl')}"
            self.add(self.t.fraud_labels, doc, "dead", key=key)
        missing = dict(label, event_id=f"bad-{self.uid('lbl')}")
        del missing["is_fraud"]
        self.add(self.t.fraud_labels, missing, "dead")
        self.add(self.t.fraud_labels, b"[]", "dead", key=b"x")
        self.add(self.t.fraud_labels, b"\xff", "dead", key=b"x")
        return self.out[mark:]

    def interactions(self) -> list[Sent]:
        mark = len(self.out)

        def it(**over) -> dict:
            doc = {"event_id": self.uid("int"), "ts": self.now - self.rng.uniform(10, 600),
                   "user_id": f"s{self.rng.randrange(6)}", "item_id": f"item-{self.rng.randrange(20)}", "kind": "view"}
            doc.update(over)
            return doc
        for kind in ("view", "click", "cart", "purchase"):
            self.add(self.t.interactions, it(kind=kind), "quiet")
        self.add(self.t.interactions, it(kind="rating", rating=4.0), "quiet")
        self.add(self.t.interactions, it(kind="rating", rating=0), "quiet")
        self.add(self.t.interactions, it(kind="wishlist"), "quiet")  # unknown kind: counted, not learned
        self.add(self.t.interactions, it(extra={"x": 1}), "quiet")
        for over in [{"rating": 4.0}, {"kind": "rating"}, {"kind": "rating", "rating": 11},
                     {"kind": "rating", "rating": -1}, {"kind": "rating", "rating": float("nan")},
                     {"kind": ""}, {"kind": 5}, {"item_id": "i" * 129}, {"item_id": "a\ud800"},
                     {"ts": self.now + 7200}, {"ts": "9999-12-31T23:59:59Z"}, {"user_id": None}]:
            self.add(self.t.interactions, it(**over), "dead", key=b"s1")
        self.add(self.t.interactions, it(), "dead", key=None)
        self.add(self.t.interactions, it(user_id="s1"), "dead", key=b"s2")
        self.add(self.t.interactions, b"{}", "dead", key=b"s1")
        return self.out[mark:]

    def requests(self) -> list[Sent]:
        mark = len(self.out)

        def rq(**over) -> dict:
            doc = {"request_id": self.uid("req"), "user_id": f"s{self.rng.randrange(6)}", "k": 5, "ts": self.now - 1}
            doc.update(over)
            return doc
        for over in [{}, {"k": 1}, {"k": 100}, {"exclude": [f"item-{i}" for i in range(200)]}, {"extra": True},
                     {"user_id": "nobody-knows-me"}]:
            self.add(self.t.reco_requests, rq(**over), "answer")
        repeated = rq()
        self.add(self.t.reco_requests, repeated, "answer")
        self.add(self.t.reco_requests, {**repeated, "k": 7}, "dead")  # same request_id, another offset
        for over in [{"k": 0}, {"k": 101}, {"k": 1.5}, {"k": "5"}, {"k": True}, {"k": 10 ** 30}, {"k": -1},
                     {"exclude": [f"i{i}" for i in range(201)]}, {"exclude": [1]}, {"exclude": "item-1"},
                     {"ts": self.now + 7200}, {"request_id": "a\ud800"}, {"request_id": "r" * 129}]:
            self.add(self.t.reco_requests, rq(**over), "dead")
        self.add(self.t.reco_requests, rq(), "dead", key=None)
        self.add(self.t.reco_requests, rq(user_id="s1"), "dead", key=b"s2")
        return self.out[mark:]


# ---------------------------------------------------------------- assertions shared by the tests

def assert_one_outcome_each(sent: list[Sent], out: Outputs, topics: set[str]) -> None:
    """``sent``: everything sent to ``topics`` so far (so every dead letter of theirs is explained)."""
    at_offset = {(s.topic, s.partition, s.offset): s for s in sent}
    for s in sent:
        where = (s.topic, s.partition, s.offset)
        letters = out.dead.get(where, [])
        distinct = {json.dumps({k: v for k, v in d.items() if k != "failed_at"}, sort_keys=True) for d in letters}
        what = f"{s.expect} {s.topic}@{s.partition}:{s.offset} {s.raw[:120]!r}"
        if s.expect in ("decide", "answer", "quiet"):
            assert not letters, f"{what} was dead-lettered: {letters[0]['stage']} {letters[0]['error']}"
        if s.expect == "decide":
            assert s.ref in out.decisions, f"{what}: no decision"
        if s.expect == "answer":
            assert s.ref in out.recommendations, f"{what}: no recommendation"
            assert len({json.dumps(r, sort_keys=True) for r in out.recommendations[s.ref]}) == 1
        if s.expect == "dead":
            assert len(distinct) == 1, f"{what}: {len(distinct)} distinct dead letters"
        if s.expect == "either":
            assert (s.ref in out.decisions) != bool(letters), f"{what}: not exactly one outcome"
    unexplained = [w for w in out.dead if w[0] in topics and w not in at_offset]
    assert unexplained == [], f"dead letters for messages nobody sent: {unexplained}"
    stray = [d for w, ds in out.dead.items() if w[0] not in topics for d in ds]
    assert [d for d in stray if d["stage"] in ("score", "batch", "learn")] == [], stray[:3]
    for event_id, records in out.decisions.items():
        assert len({json.dumps(r, sort_keys=True) for r in records}) == 1, f"two decisions for {event_id}"
        assert 0.0 <= records[0]["score"] <= 1.0 and math.isfinite(records[0]["score"]), records[0]


# ---------------------------------------------------------------- 1 and 2: nothing lost, nothing poisoned

def learned(port: int, topic: str) -> float:
    return metric(port, "streamsense_events_total", topic=topic, outcome="learned")


def checkpoint(port: int) -> int:
    """The fraud checkpoint this worker serves (`GET /v1/models`, admin scope)."""
    status, _, body = http(port, "GET", "/v1/models", OPS[0])
    assert status == 200, body
    return strict_json(body)["fraud"]["checkpoint"] or 0


def ordinary(settings: Settings, prefix: str, n: int) -> list[Sent]:
    now = time.time()
    docs = [{"event_id": f"{prefix}-{i}", "ts": now - 30 + i * 0.1, "user_id": f"plain{i % 10}", "merchant_id": "m1",
             "amount": 20.0 + i, "currency": "EUR", "country": "FR", "channel": "app"} for i in range(n)]
    return [Sent(settings.topics.transactions, d["user_id"].encode(), dumps(d), "decide", d["event_id"]) for d in docs]


def test_a_hostile_burst_on_every_topic_loses_nothing_and_poisons_nothing(settings: Settings, tmp_path) -> None:
    create_all_topics(settings)
    t = settings.topics
    workers = [start(settings, tmp_path, "worker", env=ENV)]

    async def run(out: Outputs) -> None:
        wait_ready(settings.web_port)
        warm = await send(settings, ordinary(settings, "warm", 10))
        assert await out.until(out.all_out(warm), 90), "the worker never decided the warm-up"

        burst = Burst(settings, seed=18)
        valid, _ = burst.transactions()
        burst.labels_ahead_and_ghosts()
        burst.hostile_labels(some_event="warm-0")
        burst.interactions()
        burst.requests()
        burst.add(t.fraud_labels, {"event_id": "warm-1", "is_fraud": False, "ts": burst.now - 5}, "quiet")
        burst.add(t.fraud_labels, {"event_id": "warm-1", "is_fraud": True, "ts": burst.now - 4}, "dead")
        sent = await send(settings, burst.out)
        assert await out.until(out.all_out(sent), 120), [
            (s.expect, s.raw[:100]) for s in sent if not out.outcome_of(s)]
        assert_one_outcome_each(warm + sent, out, {t.transactions, t.fraud_labels, t.interactions, t.reco_requests})
        firsts = {s.ref: s.raw for s in sent if s.expect == "decide"}
        for s in sent:  # a repeated event_id: the same payload is a dedupe, another one a conflict
            if s.expect == "dead" and s.topic == t.transactions and s.ref in firsts:
                stage = out.dead[(s.topic, s.partition, s.offset)][0]["stage"]
                assert stage == ("dedupe" if s.raw == firsts[s.ref] else "conflict"), (stage, s.raw)
        unknown = [d for d in (strict_json(s.raw) for s in sent if s.expect == "decide")
                   if d.get("channel") in ("metaverse", "c" * 32)]
        for d in unknown:
            reasons = out.decisions[d["event_id"]][0]["reasons"]
            assert any(r["name"] == "unknown_channel" for r in reasons), reasons

        # poisoning: every valid burst transaction labelled, extremes as fraud
        labels = []
        for i, d in enumerate(valid):
            fraud = bool(d.get("features")) or d["amount"] in (0, 1_000_000_000) or i % 3 == 0
            labels.append(Sent(t.fraud_labels, d["event_id"].encode(), dumps(
                {"event_id": d["event_id"], "is_fraud": fraud, "ts": time.time() - 1}), "quiet", d["event_id"]))
        await send(settings, labels)
        deadline = time.monotonic() + 60
        while metric(settings.web_port, "streamsense_labels_learned_total") < len(labels):
            assert time.monotonic() < deadline, "the hostile labels were never learned"
            await asyncio.sleep(0.5)
        after = await send(settings, ordinary(settings, "after", 30))
        assert await out.until(out.all_out(after), 60)
        assert_one_outcome_each(warm + sent + labels + after, out,
                                {t.transactions, t.fraud_labels, t.interactions, t.reco_requests})

        # a restart restores a model that still decides (the checkpoint holds what was learned)
        learned_version = out.decisions["after-29"][0]["model_version"]
        published = checkpoint(settings.web_port)
        nudge = await send(settings, ordinary(settings, "nudge", 5))  # learned, so a checkpoint follows
        deadline = time.monotonic() + 30
        while checkpoint(settings.web_port) <= published:  # one published after everything above was learned
            assert time.monotonic() < deadline, "no checkpoint after the hostile labels"
            await asyncio.sleep(0.3)
        workers[0].stop()
        workers.append(start(settings, tmp_path, "worker-again", env=ENV))
        wait_ready(settings.web_port)
        restarted = await send(settings, ordinary(settings, "restarted", 30))
        assert await out.until(out.all_out(restarted), 90), "the restarted worker does not decide"
        assert_one_outcome_each(warm + sent + labels + after + nudge + restarted, out,
                                {t.transactions, t.fraud_labels, t.interactions, t.reco_requests})
        version = out.decisions["restarted-29"][0]["model_version"]
        labels_learned = int(version.split(".")[1])
        assert labels_learned >= int(learned_version.split(".")[1]) > 0, (learned_version, version)
        assert workers[-1].alive()

    try:
        with_outputs(settings, run)
    finally:
        for worker in workers:
            worker.stop()


# ---------------------------------------------------------------- 3: nobody steers another user's answer

def test_one_sender_steers_neither_new_users_recommendations_nor_another_users_decision(
        settings: Settings, tmp_path) -> None:
    create_all_topics(settings)
    t, rng, now = settings.topics, random.Random(19), time.time()
    worker = start(settings, tmp_path, "worker", env=ENV)

    def interaction(i: int, user: str, item: str, ts: float) -> Sent:
        doc = {"event_id": f"int-{i}", "ts": ts, "user_id": user, "item_id": item, "kind": "purchase"}
        return Sent(t.interactions, user.encode(), dumps(doc), "quiet", doc["event_id"])

    def request(request_id: str, user: str, k: int = 5) -> Sent:
        doc = {"request_id": request_id, "user_id": user, "k": k, "ts": time.time()}
        return Sent(t.reco_requests, user.encode(), dumps(doc), "answer", request_id)

    organic_items = [f"item-{i}" for i in range(12)]
    organic = [interaction(i, f"shopper{i % 30}", rng.choice(organic_items[: 1 + i % 12]), now - rng.uniform(60, 1800))
               for i in range(240)]
    flood = [interaction(1000 + i, "flooder", "item-flood", now + 3500) for i in range(400)]  # the furthest allowed
    flood += [interaction(2000 + i, "flooder", "item-flood", now + 30 * DAY) for i in range(20)]  # beyond: dead
    for s in flood[400:]:
        s.expect = "dead"
    mixed = organic + flood[:400]
    rng.shuffle(mixed)

    async def run(out: Outputs) -> None:
        wait_ready(settings.web_port)
        sent = await send(settings, mixed + flood[400:])
        deadline = time.monotonic() + 90
        while learned(settings.web_port, t.interactions) < len(mixed):
            assert time.monotonic() < deadline, "interactions were not all learned"
            await asyncio.sleep(0.5)
        assert await out.until(out.all_out(sent), 30)
        assert_one_outcome_each(sent, out, {t.interactions})  # the flood beyond max_future_s: dead letters
        # a marker sent once all of the above is stored: a list holding it was refreshed after them all
        await send(settings, [interaction(9999, "marker-user", "item-marker", time.time())])
        while learned(settings.web_port, t.interactions) < len(mixed) + 1:
            assert time.monotonic() < deadline, "the marker was not learned"
            await asyncio.sleep(0.2)
        for attempt in range(100):
            probe = await send(settings, [request(f"probe-{attempt}", f"probe-user-{attempt}", k=100)])
            assert await out.until(out.all_out(probe), 30, idle_s=0)
            if "item-marker" in [i["item_id"] for i in out.recommendations[probe[0].ref][0]["items"]]:
                break
            assert time.monotonic() < deadline, "the trending list never took the marker"
            await asyncio.sleep(0.2)
        asks = await send(settings, [request(f"new-{i}", f"newcomer-{i}") for i in range(20)])
        assert await out.until(out.all_out(asks), 60)
        answers = [out.recommendations[s.ref][0] for s in asks]
        popular = [a for a in answers if a["strategy"] == "popular"]
        assert len(popular) >= 15, [a["strategy"] for a in answers]  # explore: a seeded 5 %
        led = [a["items"][0]["item_id"] for a in popular]
        assert "item-flood" not in led, f"one sender's flood leads {led.count('item-flood')} of {len(led)}: {led}"

        # impersonation: events naming the victim from another key change nothing of the victim's
        victim = [Sent(t.transactions, b"victim", dumps(
            {"event_id": f"victim-{i}", "ts": time.time() - 50 + i, "user_id": "victim", "merchant_id": "m1",
             "amount": 30.0, "currency": "EUR", "country": "FR", "channel": "app"}), "decide", f"victim-{i}")
            for i in range(5)]
        forged = [Sent(t.transactions, key, dumps(
            {"event_id": f"forged-{i}", "ts": time.time() - 40, "user_id": "victim", "merchant_id": f"m{i}",
             "amount": 9000.0, "currency": "EUR", "country": "RU", "channel": "atm", "device_id": f"evil{i}"}),
            "dead", f"forged-{i}") for i, key in enumerate([b"mallory", None, b"VICTIM", b"victim\x00"] * 5)]
        # the victim's next event_id taken first by another user: the real one is a conflict, never approved
        taken = Sent(t.transactions, b"mallory", dumps(
            {"event_id": "victim-next", "ts": time.time() - 30, "user_id": "mallory", "merchant_id": "m1",
             "amount": 1.0, "currency": "EUR", "country": "FR", "channel": "app"}), "decide", "victim-next")
        real = Sent(t.transactions, b"victim", dumps(
            {"event_id": "victim-next", "ts": time.time() - 20, "user_id": "victim", "merchant_id": "m9",
             "amount": 700.0, "currency": "EUR", "country": "FR", "channel": "app"}), "dead", "victim-next")
        sent = await send(settings, victim[:2] + forged + victim[2:] + [taken, real])
        assert await out.until(out.all_out(sent), 60)
        assert_one_outcome_each(sent, out, {t.transactions})
        assert out.dead[(real.topic, real.partition, real.offset)][0]["stage"] == "conflict"
        assert all(out.dead[(s.topic, s.partition, s.offset)][0]["error_code"] == "key_mismatch" for s in forged)
        assert (await user_history(settings, {"victim"})) == {"victim": 5}

    try:
        with_outputs(settings, run)
    finally:
        worker.stop()


# ---------------------------------------------------------------- 4: the HTTP doors the README says are closed

def raw_exchange(port: int, chunks: list[bytes], gap_s: float, limit_s: float) -> tuple[bytes, float]:
    """Send ``chunks`` ``gap_s`` apart on one connection; what the server said and when it closed."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as sock:
        received = b""
        try:
            for chunk in chunks:
                sock.sendall(chunk)
                time.sleep(gap_s)
            sock.settimeout(max(0.1, limit_s - (time.monotonic() - started)))
            while piece := sock.recv(65536):
                received += piece
        except (BrokenPipeError, ConnectionResetError):
            pass
        except TimeoutError:
            return received, math.inf
    return received, time.monotonic() - started


def test_the_http_doors_the_readme_says_are_closed_are_closed(settings: Settings, tmp_path) -> None:
    create_all_topics(settings)
    keys = {name: api_key(name, scopes) for name, scopes in
            [("alice", "score+recommend"), ("bob", "score"), ("carol", "recommend"), ("dan", "recommend"),
                                  ("eve", "recommend"), ("ops", "admin")]}
    env = {**ENV, "STREAMSENSE_API_KEYS": ",".join(entry for _, entry in keys.values()),
           "STREAMSENSE_API_HEADER_TIMEOUT_S": "2", "STREAMSENSE_API_BODY_TIMEOUT_S": "2",
           "STREAMSENSE_API_RATE_PER_S": "2", "STREAMSENSE_API_BURST": "20"}
    alice, bob, carol, dan, eve, ops = (keys[n][0] for n in ("alice", "bob", "carol", "dan", "eve", "ops"))
    worker = start(settings, tmp_path, "worker", env=env)
    port, now = settings.web_port, time.time()
    tx = {"event_id": "http-1", "ts": now - 5, "user_id": "u-1842", "merchant_id": "m-0077", "amount": 42.5,
          "currency": "EUR", "country": "FR", "channel": "app"}
    try:
        wait_ready(port)
        status, headers, body = http(port, "POST", "/v1/score", alice, dumps(tx))
        assert status == 200, body
        decision = strict_json(body)
        assert decision["event_id"] == "http-1" and 0 <= decision["score"] <= 1
        # the same event_id with another payload, from the same client or another: 409, never the decision
        for token, amount in ((alice, 9999.0), (bob, 1.0)):
            doc = assert_refusal(*http(port, "POST", "/v1/score", token, dumps({**tx, "amount": amount})), 409)
            assert doc["field"] == "event_id"
        # Not asserted: bob posting alice's exact body gets alice's decision (200); SECURITY.md marks the
        # client half of the guard OPEN (issue 19 item 3).

        # keys and scopes
        assert_refusal(*http(port, "POST", "/v1/score", None, dumps(tx)), 401)
        assert_refusal(*http(port, "POST", "/v1/score", "not-a-key", dumps(tx)), 401)
        assert_refusal(*http(port, "POST", "/v1/score", carol, dumps(tx)), 403)
        assert_refusal(*http(port, "GET", "/v1/models", alice), 403)
        assert http(port, "GET", "/v1/models", ops)[0] == 200

        # hostile bodies: refused with the field at fault, never a 5xx
        raw_bodies = [dumps(tx).replace(b"42.5", b"1e400"), dumps(tx).replace(b"42.5", b"NaN"),
                      dumps(tx).replace(b"42.5", b"9" * 5000), dumps({**tx, "amount": 1e308}),
                      dumps({**tx, "user_id": "\ud800"}), dumps({**tx, "ts": "9999-12-31T23:59:59Z"}),
                      dumps({**tx, "features": {"x": 1e308}}), b"[]", b"null", b"\xff\xfe", b"",
                      b"[" * 20000 + b"]" * 20000, dumps({**tx, "event_id": "e" * 129})]
        for i, raw in enumerate(raw_bodies):
            status, headers, body = http(port, "POST", "/v1/score", bob, raw.replace(b"http-1", f"hb-{i}".encode()))
            assert status in (400, 413, 422), (raw[:80], status, body[:200])
            assert_refusal(status, headers, body, status)
        assert_refusal(*http(port, "POST", "/v1/score", bob, b'{"pad": "' + b"x" * (256 * 1024) + b'"}'), 413)

        # numbers in the query are bounded: 422 naming k, never 500
        for k in ("9" * 5000, "0", "101", "-1", "1e3", "0x10", "\uff15", ""):
            doc = assert_refusal(*http(port, "GET", f"/v1/recommendations/u-1842?k={urllib.parse.quote(k)}", carol),
                                 422)
            assert doc["field"] == "k"

        # ids cannot change the route: the answer is the recommendation for exactly that id
        for user_id in ("a/../../metrics", "../v1/models", "../../router/topics", "x/../../v1/openapi.json"):
            path = f"/v1/recommendations/{urllib.parse.quote(user_id, safe='')}?k=3"
            status, _, body = http(port, "GET", path, dan)
            assert status == 200, (path, status, body[:200])
            assert strict_json(body)["user_id"] == user_id
        status, _, body = http(port, "GET", "/v1/recommendations/..%2F..%2Fmetrics?k=3", dan)
        assert status == 200 and strict_json(body)["user_id"] == "../../metrics", (status, body[:200])
        for path in ("/router/", "/router/topics", "/table/", "/graph/", "/assignment/"):  # Faust's own pages
            assert http(port, "GET", path, ops)[0] == 404, path

        # forged forwarding headers do not lift the client's rate (2/s, burst 20)
        started = time.monotonic()
        statuses = [http(port, "GET", f"/v1/recommendations/u-{i}?k=3", eve,
                         headers={"X-Forwarded-For": f"10.0.0.{i}", "Forwarded": f"for=10.0.1.{i}",
                                  "X-Real-IP": f"10.0.2.{i}", "X-Streamsense-Forwarded": "1",
                                  "X-Streamsense-Served-By": "elsewhere"})[0] for i in range(60)]
        allowed = 20 + 2 * (time.monotonic() - started) + 1
        assert statuses.count(200) <= allowed and set(statuses) <= {200, 429}, statuses
        assert_refusal(*http(port, "POST", "/v1/score", None, dumps(tx),
                             headers={"X-Forwarded-For": "127.0.0.1", "X-Streamsense-Forwarded": "1"}), 401)

        # slow headers are cut off, a slow body gets 408
        head = b"GET /health HTTP/1.1\r\nHost: x\r\n"
        _, closed_after = raw_exchange(port, [head] + [b"X-Slow: 1\r\n"] * 12, gap_s=0.5, limit_s=10)
        assert closed_after < 9, f"a client trickling headers was still connected after {closed_after:.1f} s"
        token_header = f"Authorization: Bearer {bob}\r\n".encode()
        slow_post = (b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + token_header
                     + b"Content-Length: 500\r\n\r\n")
        answer, closed_after = raw_exchange(port, [slow_post, b'{"event_id": '], gap_s=0.1, limit_s=10)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert closed_after < 9
        assert worker.alive()
    finally:
        worker.stop()
