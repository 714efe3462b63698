"""Decoding of raw message bytes into records: a closed domain for what we rely on, open for growth.

Any bytes give either a ``Decoded`` record or an ``InvalidEvent`` naming the rule broken and the
field at fault; nothing else escapes. The checks, in order: size cap (before parsing), UTF-8, JSON
without NaN/Infinity, an object at the top, required fields present, exact types (a bool is not a
number), finite numbers, bounded strings that UTF-8 can encode, event time as epoch seconds or
ISO-8601 with a zone and inside a window around the wall clock, the Kafka key equal to the field
the topic is keyed by.

Open (lenient, the default): a field the contract does not define is ignored and reported in
``Decoded.ignored``; a categorical value not known yet (``channel``, ``kind``) is kept and
reported in ``Decoded.unknown_values``. ``InputRules.strict`` refuses both instead.

>>> rules = InputRules(max_bytes=65536, max_past_s=86400, max_future_s=3600)
>>> raw = (b'{"event_id": "e1", "ts": "2026-11-24T10:00:00Z", "user_id": "u1", "merchant_id": "m1",'
...        b' "amount": 12.5, "currency": "EUR", "country": "FR", "channel": "web"}')
>>> tx = decode(TRANSACTIONS, raw, rules=rules, now=1_795_514_700.0, key=b"u1").record
>>> tx.ts, tx.amount, tx.device_id
(1795514400.0, 12.5, None)
>>> decode(TRANSACTIONS, raw.replace(b'"web"', b'"fax"'), rules=rules, now=1_795_514_700.0, key=b"u1")
Decoded(record=Transaction(..., channel='fax', ...), ignored=(), unknown_values=('channel',))
>>> decode(TRANSACTIONS, raw, rules=rules, now=1_795_514_700.0, key=b"u2")
Traceback (most recent call last):
...
schemas.errors.KeyMismatch: the message key must equal its user_id ('u1'); got 'u2'
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from schemas.errors import (
    BadTimestamp,
    InvalidEvent,
    KeyMismatch,
    MalformedJson,
    MissingField,
    NotAnObject,
    NotFinite,
    NotUtf8,
    OutOfRange,
    TooLarge,
    TooLong,
    UnknownEnumValue,
    UnknownField,
    WrongType,
)
from schemas.records import CHANNELS, INTERACTION_KINDS, FraudLabel, Interaction, RecoRequest, Transaction

MAX_ID_CHARS = 128
MAX_CATEGORY_CHARS = 32
MAX_FEATURES = 256
MAX_FEATURE_NAME_CHARS = 64
# |value| of a pass-through feature: far beyond any scaled or raw data set we know (credit-card
# V1..V28 stay within +-120), far enough below float's limit that squares and sums stay finite.
MAX_FEATURE_ABS = 1e9
MAX_AMOUNT = 1e9
MAX_K = 100
MAX_EXCLUDE = 200
# Epoch seconds beyond this are almost surely milliseconds sent by mistake (year 5138).
MAX_EPOCH_S = 1e11
MAX_REPORTED_FIELDS = 16  # ignored field names reported per message (the count is what matters)
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_FEATURE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _refuse_constant(name: str) -> float:
    raise NotFinite("not_finite", None, f"{name} is not a valid number in a message")


# Confluent's serializers frame each value: magic byte 0, a 4-byte big-endian schema id, then the
# payload (here JSON). No JSON text starts with a zero byte, so a framed value is unambiguous.
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_BYTES = 5


def unframed(raw: bytes) -> bytes:
    """The JSON payload of a value framed in Confluent's wire format; any other value as it is.

    >>> unframed(b"\\x00\\x00\\x00\\x00\\x07" + b'{"a": 1}'), unframed(b'{"a": 1}')
    (b'{"a": 1}', b'{"a": 1}')
    """
    if len(raw) >= CONFLUENT_HEADER_BYTES and raw[0] == CONFLUENT_MAGIC:
        return raw[CONFLUENT_HEADER_BYTES:]
    return raw


def parse_object(raw: bytes, max_bytes: int) -> dict:
    """Bytes -> a JSON object, or the reason why not.

    >>> parse_object(b'{"a": NaN}', 100)
    Traceback (most recent call last):
    ...
    schemas.errors.NotFinite: NaN is not a valid number in a message
    >>> parse_object(b"[" * 100_000, 1_000_000)
    Traceback (most recent call last):
    ...
    schemas.errors.MalformedJson: not valid JSON: nesting too deep
    """
    if not isinstance(raw, (bytes, bytearray)):
        raise WrongType("not_bytes", None, f"message value must be bytes, got {type(raw).__name__}")
    if len(raw) > max_bytes:
        raise TooLarge("too_large", None, f"message is {len(raw):,} bytes; the cap is {max_bytes:,}")
    try:
        text = bytes(unframed(raw)).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8("not_utf8", None, f"message is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise MalformedJson("malformed_json", None, "not valid JSON: nesting too deep") from None
    except ValueError as exc:  # includes JSONDecodeError and integers over 4,300 digits
        raise MalformedJson("malformed_json", None, f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise NotAnObject("not_an_object", None, f"message must be a JSON object, got {type(doc).__name__}")
    return doc


# -- field checks: each takes (field name, JSON value) and returns the typed value or raises ------
def number(name: str, value: object, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WrongType("wrong_type", name, f"{name} must be a number, got {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError:
        raise OutOfRange("out_of_range", name, f"{name} is too large a number") from None
    if not math.isfinite(out):
        raise NotFinite("not_finite", name, f"{name} must be a finite number")
    if not low <= out <= high:
        raise OutOfRange("out_of_range", name, f"{name} must be between {low:g} and {high:g}; got {out:g}")
    return out


def text(name: str, value: object, max_chars: int = MAX_ID_CHARS) -> str:
    """A non-empty string of at most ``max_chars`` printable characters that UTF-8 can encode.

    JSON may carry a lone UTF-16 surrogate (``"\\ud800"``); it decodes to a Python string that
    cannot be encoded again, so it would fail later, in a Redis key or an output message.

    >>> text("user_id", "\\ud800")
    Traceback (most recent call last):
    ...
    schemas.errors.NotUtf8: user_id must be encodable as UTF-8 (a lone surrogate at character 0)
    """
    if not isinstance(value, str):
        raise WrongType("wrong_type", name, f"{name} must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= max_chars:
        raise TooLong("bad_length", name, f"{name} must have 1 to {max_chars} characters; got {len(value)}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise NotUtf8("unencodable", name, f"{name} must be encodable as UTF-8 "
                                               f"(a lone surrogate at character {exc.start})") from None
    if not value.isprintable():  # control, format, private-use, unassigned or separator characters
        raise WrongType("not_printable", name, f"{name} must hold printable characters only")
    return value


def boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise WrongType("wrong_type", name, f"{name} must be true or false, got {type(value).__name__}")
    return value


def pattern(regex: re.Pattern, what: str) -> Callable[[str, object], str]:
    def check(name: str, value: object) -> str:
        out = text(name, value, 8)
        if not regex.fullmatch(out):
            raise UnknownEnumValue("bad_format", name, f"{name} must be {what}; got {out!r}")
        return out
    return check


def category(name: str, value: object) -> str:
    """A categorical value: known or not is decided by the shape and the rules (open or strict)."""
    return text(name, value, MAX_CATEGORY_CHARS)


def timestamp(name: str, value: object) -> float:
    """Epoch seconds, or an ISO-8601 string with a time zone.

    >>> timestamp("ts", "2026-01-01T00:00:00+01:00"), timestamp("ts", 1.5)
    (1767222000.0, 1.5)
    >>> timestamp("ts", "2026-01-01T00:00:00")
    Traceback (most recent call last):
    ...
    schemas.errors.BadTimestamp: ts must carry a time zone (e.g. 2026-01-01T00:00:00Z); got '2026-01-01T00:00:00'
    """
    if isinstance(value, str):
        if len(value) > 64:
            raise BadTimestamp("bad_timestamp", name, f"{name} is not an ISO-8601 time")
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise BadTimestamp("bad_timestamp", name, f"{name} is not an ISO-8601 time: {value!r}") from None
        if parsed.tzinfo is None:
            raise BadTimestamp("bad_timestamp", name,
                               f"{name} must carry a time zone (e.g. 2026-01-01T00:00:00Z); got {value!r}")
        return parsed.timestamp()
    return number(name, value, 0.0, MAX_EPOCH_S)


def feature_map(name: str, value: object) -> Mapping[str, float]:
    """At most 256 numbers named by 1 to 64 of ``A-Z a-z 0-9 _ . -``, each within +-1e9."""
    if not isinstance(value, dict):
        raise WrongType("wrong_type", name, f"{name} must be an object of numbers, got {type(value).__name__}")
    if len(value) > MAX_FEATURES:
        raise TooLong("too_many_features", name, f"{name} has {len(value)} entries; at most {MAX_FEATURES}")
    out = {}
    for key, v in value.items():
        if not _FEATURE_NAME.fullmatch(key):
            raise WrongType("bad_feature_name", f"{name}.key", f"each {name} name must be 1 to "
                            f"{MAX_FEATURE_NAME_CHARS} of A-Z a-z 0-9 _ . -; got {key[:MAX_FEATURE_NAME_CHARS]!r}")
        out[key] = number(f"{name}.{key}", v, -MAX_FEATURE_ABS, MAX_FEATURE_ABS)
    return types.MappingProxyType(out)


def integer(low: int, high: int) -> Callable[[str, object], int]:
    def check(name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise WrongType("wrong_type", name, f"{name} must be an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise OutOfRange("out_of_range", name, f"{name} must be between {low} and {high}; got {value}")
        return value
    return check


def id_list(name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise WrongType("wrong_type", name, f"{name} must be a list of ids, got {type(value).__name__}")
    if len(value) > MAX_EXCLUDE:
        raise TooLong("too_many_items", name, f"{name} has {len(value)} ids; at most {MAX_EXCLUDE}")
    return tuple(text(f"{name}[]", v) for v in value)


def _rating_only_with_its_kind(values: dict) -> None:
    """A ``rating`` belongs to kind "rating"; an unknown kind may carry one (a future explicit kind)."""
    kind = values["kind"]
    if kind == "rating" and "rating" not in values:
        raise MissingField("missing_field", "rating", 'kind "rating" needs a rating value')
    if kind != "rating" and kind in INTERACTION_KINDS and "rating" in values:
        raise UnknownField("unexpected_field", "rating", f'a rating belongs to kind "rating", not {kind!r}')


# -- the topics -----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per topic
class Shape:
    """One input topic's contract: its fields, the field its Kafka key must equal, its open categories."""

    topic: str
    record: type
    key_field: str
    required: Mapping[str, Callable]
    optional: Mapping[str, Callable]
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # field -> values known today
    check: Callable[[dict], None] | None = None  # a rule across fields


TRANSACTIONS = Shape(
    "transactions", Transaction, "user_id",
    required={"event_id": text, "ts": timestamp, "user_id": text, "merchant_id": text,
              "amount": lambda n, v: number(n, v, 0.0, MAX_AMOUNT),
              "currency": pattern(_CURRENCY, "an ISO 4217 code like EUR"),
              "country": pattern(_COUNTRY, "an ISO 3166 alpha-2 code like FR"),
              "channel": category},
    optional={"device_id": text, "features": feature_map},
    categories={"channel": CHANNELS})
LABELS = Shape("fraud-labels", FraudLabel, "event_id",
               required={"event_id": text, "is_fraud": boolean, "ts": timestamp}, optional={})
INTERACTIONS = Shape(
    "interactions", Interaction, "user_id",
    required={"event_id": text, "ts": timestamp, "user_id": text, "item_id": text, "kind": category},
    optional={"rating": lambda n, v: number(n, v, 0.0, 10.0)},
    categories={"kind": INTERACTION_KINDS}, check=_rating_only_with_its_kind)
RECO_REQUESTS = Shape("reco-requests", RecoRequest, "user_id",
                      required={"request_id": text, "user_id": text, "k": integer(1, MAX_K), "ts": timestamp},
                      optional={"exclude": id_list})
SHAPES = (TRANSACTIONS, LABELS, INTERACTIONS, RECO_REQUESTS)


@dataclass(frozen=True)
class InputRules:
    """What an input must satisfy beyond its shape: size, the event-time window, strictness."""

    max_bytes: int
    max_past_s: float  # event times further behind the wall clock are refused
    max_future_s: float  # event times further ahead of the wall clock are refused
    strict: bool = False  # refuse unknown fields and unknown categorical values too

    @classmethod
    def from_settings(cls, settings) -> InputRules:
        return cls(settings.max_event_bytes, settings.max_past_s, settings.max_future_s, settings.strict_input)


class _Unkeyed:
    def __repr__(self) -> str:
        return "UNKEYED"


# The message did not come through Kafka (the HTTP API, a file): there is no key to check.
UNKEYED = _Unkeyed()


class Decoded(NamedTuple):
    record: object
    ignored: tuple[str, ...]  # fields the contract does not define (lenient mode), first 16 names
    unknown_values: tuple[str, ...]  # categorical fields whose value is not known yet (lenient mode)


def _shown(name: str) -> str:
    """A field name fit to report: any lone surrogate escaped, at most 64 characters."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")[:64]


def _in_window(name: str, ts: float, now: float, rules: InputRules) -> None:
    if ts > now + rules.max_future_s:
        raise OutOfRange("too_far_in_future", name, f"event time is {ts - now:,.0f} s ahead of the wall clock; "
                                                    f"at most {rules.max_future_s:,.0f} s allowed")
    if ts < now - rules.max_past_s:
        raise OutOfRange("too_far_in_past", name, f"event time is {now - ts:,.0f} s behind the wall clock; "
                                                  f"at most {rules.max_past_s:,.0f} s allowed")


def _check_key(shape: Shape, values: dict, key: bytes | None) -> None:
    """The key decides the partition, and so the one worker that owns the user (or the event):
    a message keyed otherwise would be a second writer of that state, so it is refused."""
    expected = values[shape.key_field]
    if key is None:
        raise KeyMismatch("key_mismatch", shape.key_field,
                          f"the message has no key; it must equal its {shape.key_field} ({expected!r})")
    if key != expected.encode("utf-8"):
        shown = key[:MAX_ID_CHARS].decode("utf-8", "replace")
        raise KeyMismatch("key_mismatch", shape.key_field,
                          f"the message key must equal its {shape.key_field} ({expected!r}); got {shown!r}")


def decode(shape: Shape, raw: bytes, *, rules: InputRules, now: float, key: bytes | None | _Unkeyed) -> Decoded:
    """Decode one message of ``shape``'s topic; ``now`` is the wall clock, read by the caller."""
    doc = parse_object(raw, rules.max_bytes)
    checks = {**shape.required, **shape.optional}
    ignored = [_shown(name) for name in doc if name not in checks]
    if ignored and rules.strict:
        raise UnknownField("unknown_field", ignored[0], f"unknown field {ignored[0]!r}")
    for name in shape.required:
        if name not in doc:
            raise MissingField("missing_field", name, f"required field {name!r} is missing")
    values = {name: checks[name](name, value) for name, value in doc.items() if name in checks}
    unknown = tuple(name for name, known in shape.categories.items() if values[name] not in known)
    if unknown and rules.strict:
        name = unknown[0]
        raise UnknownEnumValue("unknown_value", name, f"{name} must be one of "
                               f"{', '.join(shape.categories[name])}; got {values[name]!r}")
    if shape.check is not None:
        shape.check(values)
    _in_window("ts", values["ts"], now, rules)
    if key is not UNKEYED:
        _check_key(shape, values, key)  # type: ignore[arg-type]
    return Decoded(shape.record(**values), tuple(ignored[:MAX_REPORTED_FIELDS]), unknown)


__all__ = ["INTERACTIONS", "LABELS", "RECO_REQUESTS", "SHAPES", "TRANSACTIONS", "UNKEYED", "Decoded",
           "InputRules", "InvalidEvent", "Shape", "decode", "parse_object"]
