"""Streamsense's own records: what it keeps in Redis for itself and sends itself on the learn topic.

Each record has one serialisation, defined here: compact JSON through ``schemas.internal_json``,
with short keys because one of each is written for every decision. No other service reads these
(the public contracts are ``schemas.records``), but workers of two releases share them during a
rolling upgrade, so the keys below are the format: change them only with a version.

>>> snap = Snapshot({"amount": 12.5}, "m1", 100.0, 0.25)
>>> snap.to_bytes()
b'{"x":{"amount":12.5},"m":"m1","ts":100.0,"p":0.25}'
>>> Snapshot.from_bytes(snap.learned_as_legitimate().to_bytes()).assumed_legitimate
True
>>> [(first, raw)] = learn_batches([UnlabelledExample("e1", {"amount": 12.5}), LabelledExample("e2", snap, True)],
...                                max_bytes=1000)
>>> first, [example_from_doc(doc) for doc in read_learn_batch(raw)][0]
('e1', UnlabelledExample(event_id='e1', features={'amount': 12.5}))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from schemas import internal_json
from schemas.records import FraudDecision, Interaction, Transaction

UNKNOWN_SCORE = 0.5  # snapshots written before the score was kept in them


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A decided event's features as they were at decision time, kept until its label arrives
    (the model learns from these, never from features computed later: no leakage)."""

    features: Mapping[str, float]
    merchant: str  # the merchant's pseudonym (a keyed HMAC), never the raw id: snapshots wait in Redis for days
    ts: float  # event time of the transaction
    score: float  # the score it was decided with (for the rolling ROCAUC once labelled)
    assumed_legitimate: bool = False  # already learned as legitimate at the label horizon
    arm: tuple[str, str] | None = None  # (experiment, arm) the decision was made in: labels are counted per arm
    blend: float | None = None  # the score before calibration (what the calibration learns from)
    calibration: tuple[float, float] | None = None  # the calibration's (a, b) when it was decided; None: identity

    def learned_as_legitimate(self) -> Snapshot:
        return dataclasses.replace(self, assumed_legitimate=True)

    def to_doc(self) -> dict:
        doc = {"x": self.features, "m": self.merchant, "ts": self.ts, "p": self.score}
        if self.assumed_legitimate:
            doc["a"] = 1
        if self.arm is not None:
            doc["ab"] = list(self.arm)
        if self.blend is not None:
            doc["b"] = self.blend
        if self.calibration is not None:
            doc["c"] = list(self.calibration)
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping) -> Snapshot:
        arm = doc.get("ab")
        return cls(doc["x"], doc["m"], doc["ts"], doc.get("p", UNKNOWN_SCORE), bool(doc.get("a")),
                   None if arm is None else (str(arm[0]), str(arm[1])), doc.get("b"),
                   None if doc.get("c") is None else (float(doc["c"][0]), float(doc["c"][1])))

    def to_bytes(self) -> bytes:
        return internal_json.dumps(self.to_doc())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Snapshot:
        return cls.from_doc(internal_json.loads(raw))


def event_digest(tx: Transaction) -> str:
    """What binds a stored decision to its event: a hash of the canonical payload (the decoded
    fields, so key order, spacing and timestamp format do not change it).

    >>> tx = Transaction("e1", 100.0, "u", "m", 12.5, "EUR", "FR", "web")
    >>> event_digest(tx) == event_digest(Transaction("e1", 100, "u", "m", 12.5, "EUR", "FR", "web"))
    True
    >>> event_digest(tx) == event_digest(dataclasses.replace(tx, amount=12.51))
    False
    """
    doc = {**tx.to_dict(), "ts": float(tx.ts), "amount": float(tx.amount)}  # 12 and 12.0 are one amount
    if tx.features:
        doc["features"] = {name: float(value) for name, value in tx.features.items()}
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """The decision recorded for an event_id: the input it came from (an offset, or ``api``), the
    digest of the payload it decided (None in records written before digests were kept) and the
    API client that submitted it (None when it came from Kafka)."""

    source: str
    decision: FraudDecision
    payload: str | None = None
    client: str | None = None

    def to_bytes(self) -> bytes:
        doc = {"src": self.source, "d": self.decision.to_dict()}
        if self.payload is not None:
            doc["h"] = self.payload
        if self.client is not None:
            doc["c"] = self.client
        return internal_json.dumps(doc)

    @classmethod
    def from_bytes(cls, raw: bytes) -> StoredDecision:
        doc = internal_json.loads(raw)
        return cls(source=doc["src"], decision=FraudDecision.from_dict(doc["d"]), payload=doc.get("h"),
                   client=doc.get("c"))

    def conflicts_with(self, payload: str, client: str | None = None) -> bool:
        """Whether ``payload`` is another event than the one decided under this event_id, or an API
        ``client`` asks for a decision another API client submitted. (Kafka producers are trusted with
        any decision of a payload they can reproduce: HTTP and Kafka may carry one event.)"""
        if self.payload is not None and self.payload != payload:
            return True
        return client is not None and self.client is not None and self.client != client


@dataclass(frozen=True, slots=True)
class UnlabelledExample:
    """A decided event's features: the anomaly model learns every event once, label or not."""

    event_id: str
    features: Mapping[str, float]

    def to_doc(self) -> dict:
        return {"e": self.event_id, "y": None, "o": True, "s": {"x": self.features}}


@dataclass(frozen=True, slots=True)
class LabelledExample:
    """A snapshot with its label, for the classifier."""

    event_id: str
    snapshot: Snapshot
    is_fraud: bool
    observed: bool = True  # False: assumed legitimate at the horizon, not a label anyone sent

    def to_doc(self) -> dict:
        return {"e": self.event_id, "y": self.is_fraud, "o": self.observed, "s": self.snapshot.to_doc()}


@dataclass(frozen=True, slots=True)
class InteractionExample:
    """An interaction for the recommender's one learner, with the user's items before it (the
    learner samples negatives outside them).

    >>> it = Interaction("i-1", 10.0, "ann", "a", "view")
    >>> example_from_doc(InteractionExample(it, ("b",)).to_doc()) == InteractionExample(it, ("b",))
    True
    """

    interaction: Interaction
    seen: tuple[str, ...]

    @property
    def event_id(self) -> str:
        return self.interaction.event_id

    def to_doc(self) -> dict:
        return {"k": "i", "e": self.event_id, "i": self.interaction.to_dict(), "seen": list(self.seen)}


LearnExample = UnlabelledExample | LabelledExample | InteractionExample


def example_from_doc(doc: Mapping) -> LearnExample:
    """One example of a learn batch; raises KeyError or TypeError on a malformed one."""
    if doc.get("k") == "i":
        return InteractionExample(Interaction.from_dict(doc["i"]), tuple(doc["seen"]))
    if doc["y"] is None:
        return UnlabelledExample(doc["e"], doc["s"]["x"])
    return LabelledExample(doc["e"], Snapshot.from_doc(doc["s"]), bool(doc["y"]), bool(doc["o"]))


_BATCH_OPEN, _BATCH_CLOSE = b'{"b":[', b"]}"


def learn_batches(examples: Sequence[LearnExample], max_bytes: int, max_examples: int = 100
                  ) -> list[tuple[str, bytes]]:
    """``examples`` packed in order into learn-topic messages, ``{"b": [...]}``, each at most
    ``max_bytes`` long (an example longer than that goes alone) and ``max_examples`` examples:
    (event_id of its first example, message) per message."""
    batches: list[tuple[str, bytes]] = []
    parts: list[bytes] = []
    first, size = "", 0
    for example in examples:
        part = internal_json.dumps(example.to_doc())
        if parts and (size + 1 + len(part) > max_bytes or len(parts) == max_examples):
            batches.append((first, _BATCH_OPEN + b",".join(parts) + _BATCH_CLOSE))
            parts = []
        if not parts:
            first, size = example.event_id, len(_BATCH_OPEN) + len(_BATCH_CLOSE) - 1
        parts.append(part)
        size += 1 + len(part)  # the comma before it (one too many for the first, counted off above)
    if parts:
        batches.append((first, _BATCH_OPEN + b",".join(parts) + _BATCH_CLOSE))
    return batches


def read_learn_batch(raw: bytes) -> list:
    """The example documents of a learn-topic message, each read on its own by ``example_from_doc``
    (so one malformed example is refused alone); raises ValueError, KeyError or TypeError."""
    return internal_json.loads(raw)["b"]
