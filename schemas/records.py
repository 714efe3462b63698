"""The records of the fraud path: what goes in, what comes out, what is refused.

Each record serialises to compact JSON (``to_json``) and back (``from_dict``); the JSON Schema
files next to this module describe the same contracts for other languages.

>>> d = FraudDecision("evt-1", 0.12, "approve", (Reason("amount", "feature", 0.4),), "lr+hst+rules", "1.0",
...                   False, False, 1.5, 1700000000.0)
>>> FraudDecision.from_dict(json.loads(d.to_json())) == d
True
"""

from __future__ import annotations

import base64
import functools
import json
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from schemas.errors import InvalidEvent

CHANNELS = ("web", "app", "pos", "atm", "phone")
DECISIONS = ("approve", "review", "decline")
REASON_KINDS = ("feature", "rule", "anomaly", "flag", "input")
INTERACTION_KINDS = ("view", "click", "cart", "purchase", "rating")
STRATEGIES = ("personal", "popular", "explore")
DRIFT_TARGETS = ("feature", "score", "error", "label_rate", "rule")
SEVERITIES = ("warning", "critical")
MAX_ERROR_CHARS = 1000


def dumps(doc: dict) -> bytes:
    """Compact JSON; NaN and infinities are refused, never written."""
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def shallow_dict(record) -> dict:
    """The fields of a flat dataclass; ``dataclasses.asdict`` deep-copies and costs ~10x more on the hot path."""
    return {name: getattr(record, name) for name in _field_names(type(record))}


EXPERIMENT_FIELDS = ("experiment", "arm")


def without_none(doc: dict, optional: tuple[str, ...]) -> dict:
    """``doc`` without the ``optional`` fields that are None (absent from the JSON, as the schemas say)."""
    for name in optional:
        if doc[name] is None:
            del doc[name]
    return doc


class _Plain:
    """to_dict / to_json / from_dict for records made of plain fields."""

    __slots__ = ()

    def to_dict(self) -> dict:
        return shallow_dict(self)

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping):
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Transaction(_Plain):
    event_id: str
    ts: float  # event time, epoch seconds UTC
    user_id: str
    merchant_id: str
    amount: float
    currency: str
    country: str
    channel: str
    device_id: str | None = None
    features: Mapping[str, float] = field(default_factory=lambda: types.MappingProxyType({}))

    def to_dict(self) -> dict:
        doc = {"event_id": self.event_id, "ts": self.ts, "user_id": self.user_id, "merchant_id": self.merchant_id,
               "amount": self.amount, "currency": self.currency, "country": self.country, "channel": self.channel}
        if self.device_id is not None:
            doc["device_id"] = self.device_id
        if self.features:
            doc["features"] = dict(self.features)
        return doc

    @classmethod
    def from_dict(cls, d: Mapping) -> Transaction:
        return cls(**{**d, "features": types.MappingProxyType(dict(d.get("features") or {}))})


@dataclass(frozen=True, slots=True)
class FraudLabel(_Plain):
    event_id: str
    is_fraud: bool
    ts: float


@dataclass(frozen=True, slots=True)
class Reason:
    name: str
    # feature: contribution to the log-odds; rule: its score bump; anomaly: its rank; flag: 1.0;
    # input: something in the event this version does not know, ``value`` the text it carried.
    kind: str
    value: float | str


def unknown_value_reasons(tx: Transaction) -> tuple[Reason, ...]:
    """A reason naming each categorical value of ``tx`` this version does not know (lenient input).

    >>> unknown_value_reasons(Transaction("e", 0.0, "u", "m", 1.0, "EUR", "FR", "voice"))
    (Reason(name='unknown_channel', kind='input', value='voice'),)
    """
    return () if tx.channel in CHANNELS else (Reason("unknown_channel", "input", tx.channel),)


@dataclass(frozen=True, slots=True)
class RulesApplied:
    """The rule set that took part in a decision: its version, the active rules that fired and the
    shadow rules that would have (reported, not acted on)."""

    version: str
    fired: tuple[str, ...] = ()
    shadow: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"version": self.version, "fired": list(self.fired), "shadow": list(self.shadow)}

    @classmethod
    def from_dict(cls, d: Mapping) -> RulesApplied:
        return cls(d["version"], tuple(d.get("fired", ())), tuple(d.get("shadow", ())))


@dataclass(frozen=True, slots=True)
class FraudDecision(_Plain):
    event_id: str
    score: float
    decision: str
    reasons: tuple[Reason, ...]
    model: str
    model_version: str
    degraded: bool
    late: bool
    latency_ms: float
    decided_at: float
    rules: RulesApplied | None = None  # absent in decisions made before rules were data
    experiment: str | None = None  # the experiment the user was in when decided (absent: none running)
    arm: str | None = None  # control or treatment (schemas: optional, absent when ``experiment`` is)

    def to_dict(self) -> dict:
        doc = without_none(shallow_dict(self), EXPERIMENT_FIELDS) | {"reasons": [shallow_dict(r) for r in self.reasons]}
        if self.rules is None:
            del doc["rules"]
        else:
            doc["rules"] = self.rules.to_dict()
        return doc

    @classmethod
    def from_dict(cls, d: Mapping) -> FraudDecision:
        rules = RulesApplied.from_dict(d["rules"]) if d.get("rules") is not None else None
        return cls(**{**d, "reasons": tuple(Reason(**r) for r in d["reasons"]), "rules": rules})


@dataclass(frozen=True, slots=True)
class ReviewCase:
    """A ``review`` decision as a case for a person to work: opened when the decision is made."""

    event_id: str
    opened_at: float  # when the decision was made
    decision: FraudDecision
    status: str = "open"

    def to_dict(self) -> dict:
        return {"event_id": self.event_id, "status": self.status, "opened_at": self.opened_at,
                "decision": self.decision.to_dict()}

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping) -> ReviewCase:
        return cls(d["event_id"], d["opened_at"], FraudDecision.from_dict(d["decision"]), d["status"])


@dataclass(frozen=True, slots=True)
class Interaction(_Plain):
    event_id: str
    ts: float
    user_id: str
    item_id: str
    kind: str
    rating: float | None = None

    def to_dict(self) -> dict:
        doc = shallow_dict(self)
        if self.rating is None:
            del doc["rating"]
        return doc


@dataclass(frozen=True, slots=True)
class RecoRequest(_Plain):
    request_id: str
    user_id: str
    k: int
    ts: float
    exclude: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return shallow_dict(self) | {"exclude": list(self.exclude)}

    @classmethod
    def from_dict(cls, d: Mapping) -> RecoRequest:
        return cls(**{**d, "exclude": tuple(d.get("exclude", ()))})


@dataclass(frozen=True, slots=True)
class RecoItem:
    item_id: str
    score: float


@dataclass(frozen=True, slots=True)
class Recommendation(_Plain):
    request_id: str
    user_id: str
    items: tuple[RecoItem, ...]
    strategy: str
    model: str
    model_version: str
    latency_ms: float
    generated_at: float
    experiment: str | None = None  # as on FraudDecision
    arm: str | None = None
    # The probability with which this list was chosen: its strategy's share (explore included) times
    # the chance of these items under it (a uniform draw for explore, 1 for a ranking), for off-policy
    # evaluation (online_models.off_policy).
    propensity: float | None = None

    def to_dict(self) -> dict:
        return without_none(shallow_dict(self), (*EXPERIMENT_FIELDS, "propensity")) | {
            "items": [shallow_dict(i) for i in self.items]}

    @classmethod
    def from_dict(cls, d: Mapping) -> Recommendation:
        return cls(**{**d, "items": tuple(RecoItem(**i) for i in d["items"])})


@dataclass(frozen=True, slots=True)
class DriftSignal(_Plain):
    signal_id: str
    target: str  # feature, score, error, label_rate or rule
    name: str  # the feature's name, the model's, or the rule's
    detector: str
    statistic: float
    threshold: float
    severity: str
    action: str  # what streamsense did about it
    model_version: str
    detected_at: float  # event time of the observation that tripped the detector
    observations: int
    reference: float = 0.0  # the statistic before the change (the reference window's mean, or ADWIN's estimate)
    current: float = 0.0  # the statistic since
    moved: tuple = ()  # inputs: the values that moved most, {name, psi, reference, current}, largest first

    def to_dict(self) -> dict:
        return {**shallow_dict(self), "moved": [dict(m) for m in self.moved]}

    @classmethod
    def from_dict(cls, d: Mapping) -> DriftSignal:
        return cls(**{**d, "moved": tuple(dict(m) for m in d.get("moved", ()))})


@dataclass(frozen=True, slots=True)
class ModelEvent(_Plain):
    event: str  # promoted or rolled_back
    role: str
    version: int  # the checkpoint version now serving
    model_version: str
    previous_version: int | None
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class ExperimentEvent(_Plain):
    """An experiment started, ramped, stopped or rolled back (on model-events, beside ModelEvent)."""

    event: str  # one of EXPERIMENT_EVENTS
    role: str  # the model: fraud or reco
    experiment: str
    treatment: str
    share: float  # the treatment's percentage of users from now on (0 once stopped)
    reason: str
    by: str
    at: float


EXPERIMENT_EVENTS = ("experiment_started", "experiment_ramped", "experiment_stopped", "experiment_rolled_back")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class DeadLetter(_Plain):
    source_topic: str
    partition: int
    offset: int
    stage: str
    error_code: str
    error: str
    field: str | None
    raw_b64: str
    raw_size: int
    truncated: bool
    key_b64: str | None
    failed_at: float

    @classmethod
    def from_raw(cls, raw: bytes | None, *, key: bytes | None, source_topic: str, partition: int, offset: int,
                 stage: str, error: BaseException, cap: int, failed_at: float) -> DeadLetter:
        """The refused message, its first ``cap`` bytes kept, with where it came from and why.

        >>> from schemas.errors import TooLarge
        >>> letter = DeadLetter.from_raw(b"x" * 10, key=b"k", source_topic="t", partition=0, offset=7,
        ...                              stage="validate", error=TooLarge("too_large", None, "too big"),
        ...                              cap=4, failed_at=0.0)
        >>> letter.raw_b64, letter.raw_size, letter.truncated, letter.error_code
        ('eHh4eA==', 10, True, 'too_large')
        >>> DeadLetter.from_raw(b"", key=None, source_topic="t", partition=0, offset=8, stage="score",
        ...                     error=ZeroDivisionError("division by zero"), cap=4, failed_at=0.0).error
        'ZeroDivisionError: division by zero'
        """
        raw = raw or b""
        if isinstance(error, InvalidEvent):
            code, message, at = error.code, error.message, error.field
        else:
            code, message, at = type(error).__name__, f"{type(error).__name__}: {error}", None
        return cls(source_topic=source_topic, partition=partition, offset=offset, stage=stage, error_code=code,
                   error=message[:MAX_ERROR_CHARS], field=at, raw_b64=_b64(raw[:cap]), raw_size=len(raw),
                   truncated=len(raw) > cap, key_b64=None if key is None else _b64(key[:cap]), failed_at=failed_at)
