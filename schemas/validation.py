"""Strict decoding of raw message bytes into records.

Any bytes give either a record or an ``InvalidEvent`` naming the rule broken and the field at
fault; nothing else escapes. The checks, in order: size cap (before parsing), UTF-8, JSON without
NaN/Infinity, an object at the top, no unknown fields, required fields present, exact types
(a bool is not a number), finite numbers, bounded strings, known enum values, event time as
epoch seconds or ISO-8601 with a zone.

>>> raw = (b'{"event_id": "e1", "ts": "2026-11-24T10:00:00Z", "user_id": "u1", "merchant_id": "m1",'
...        b' "amount": 12.5, "currency": "EUR", "country": "FR", "channel": "web"}')
>>> tx = decode_transaction(raw, max_bytes=65536, now=1_795_514_700.0, max_future_s=3600, max_past_s=86400)
>>> tx.ts, tx.amount, tx.device_id
(1795514400.0, 12.5, None)
>>> decode_transaction(raw.replace(b'"web"', b'"fax"'), max_bytes=65536, now=1_795_514_700.0,
...                    max_future_s=3600, max_past_s=86400)
Traceback (most recent call last):
...
schemas.errors.UnknownEnumValue: channel must be one of web, app, pos, atm, phone; got 'fax'
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import types
from typing import Callable, Mapping

from schemas.errors import (BadTimestamp, InvalidEvent, MalformedJson, MissingField, NotAnObject, NotFinite,
                            NotUtf8, OutOfRange, TooLarge, TooLong, UnknownEnumValue, UnknownField, WrongType)
from schemas.records import CHANNELS, INTERACTION_KINDS, FraudLabel, Interaction, RecoRequest, Transaction

MAX_ID_CHARS = 128
MAX_FEATURES = 256
MAX_FEATURE_NAME_CHARS = 64
MAX_AMOUNT = 1e9
MAX_K = 100
MAX_EXCLUDE = 200
# Epoch seconds beyond this are almost surely milliseconds sent by mistake (year 5138).
MAX_EPOCH_S = 1e11
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRY = re.compile(r"[A-Z]{2}")


def _refuse_constant(name: str) -> float:
    raise NotFinite("not_finite", None, f"{name} is not a valid number in a message")


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
        text = bytes(raw).decode("utf-8")
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
    if not isinstance(value, str):
        raise WrongType("wrong_type", name, f"{name} must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= max_chars:
        raise TooLong("bad_length", name, f"{name} must have 1 to {max_chars} characters; got {len(value)}")
    if _CONTROL.search(value):
        raise WrongType("control_characters", name, f"{name} must not contain control characters")
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


def one_of(choices: tuple[str, ...]) -> Callable[[str, object], str]:
    def check(name: str, value: object) -> str:
        out = text(name, value, 32)
        if out not in choices:
            raise UnknownEnumValue("unknown_value", name, f"{name} must be one of {', '.join(choices)}; got {out!r}")
        return out
    return check


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
    if not isinstance(value, dict):
        raise WrongType("wrong_type", name, f"{name} must be an object of numbers, got {type(value).__name__}")
    if len(value) > MAX_FEATURES:
        raise TooLong("too_many_features", name, f"{name} has {len(value)} entries; at most {MAX_FEATURES}")
    return types.MappingProxyType({text(f"{name}.key", k, MAX_FEATURE_NAME_CHARS): number(f"{name}.{k}", v)
                                   for k, v in value.items()})


def fields(doc: dict, required: Mapping[str, Callable], optional: Mapping[str, Callable]) -> dict:
    """Check a parsed object against a field table: no unknown fields, none missing, each value typed."""
    for name in doc:
        if name not in required and name not in optional:
            raise UnknownField("unknown_field", str(name)[:64], f"unknown field {str(name)[:64]!r}")
    for name in required:
        if name not in doc:
            raise MissingField("missing_field", name, f"required field {name!r} is missing")
    checks = {**required, **optional}
    return {name: checks[name](name, value) for name, value in doc.items()}


TRANSACTION_REQUIRED = {
    "event_id": text, "ts": timestamp, "user_id": text, "merchant_id": text,
    "amount": lambda n, v: number(n, v, 0.0, MAX_AMOUNT),
    "currency": pattern(_CURRENCY, "an ISO 4217 code like EUR"),
    "country": pattern(_COUNTRY, "an ISO 3166 alpha-2 code like FR"),
    "channel": one_of(CHANNELS),
}
TRANSACTION_OPTIONAL = {"device_id": text, "features": feature_map}
LABEL_REQUIRED = {"event_id": text, "is_fraud": boolean, "ts": timestamp}
INTERACTION_REQUIRED = {"event_id": text, "ts": timestamp, "user_id": text, "item_id": text,
                        "kind": one_of(INTERACTION_KINDS)}
INTERACTION_OPTIONAL = {"rating": lambda n, v: number(n, v, 0.0, 10.0)}


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


RECO_REQUEST_REQUIRED = {"request_id": text, "user_id": text, "k": integer(1, MAX_K), "ts": timestamp}
RECO_REQUEST_OPTIONAL = {"exclude": id_list}


def decode_transaction(raw: bytes, *, max_bytes: int, now: float, max_future_s: float,
                       max_past_s: float) -> Transaction:
    """Decode a transactions message; its event time must lie within [now - max_past_s, now + max_future_s]."""
    values = fields(parse_object(raw, max_bytes), TRANSACTION_REQUIRED, TRANSACTION_OPTIONAL)
    ts = values["ts"]
    if ts > now + max_future_s:
        raise OutOfRange("too_far_in_future", "ts", f"event time is {ts - now:,.0f} s ahead of the wall clock; "
                                                    f"at most {max_future_s:,.0f} s allowed")
    if ts < now - max_past_s:
        raise OutOfRange("too_far_in_past", "ts", f"event time is {now - ts:,.0f} s behind the wall clock; "
                                                  f"at most {max_past_s:,.0f} s allowed")
    return Transaction(**values)


def decode_label(raw: bytes, *, max_bytes: int) -> FraudLabel:
    """Decode a fraud-labels message.

    >>> decode_label(b'{"event_id": "e1", "is_fraud": 1, "ts": 0}', max_bytes=100)
    Traceback (most recent call last):
    ...
    schemas.errors.WrongType: is_fraud must be true or false, got int
    """
    return FraudLabel(**fields(parse_object(raw, max_bytes), LABEL_REQUIRED, {}))


def decode_interaction(raw: bytes, *, max_bytes: int) -> Interaction:
    """Decode an interactions message; a ``rating`` belongs to kind "rating" only.

    >>> decode_interaction(b'{"event_id": "i1", "ts": 5, "user_id": "u", "item_id": "a", "kind": "rating"}',
    ...                    max_bytes=1000)
    Traceback (most recent call last):
    ...
    schemas.errors.MissingField: kind "rating" needs a rating value
    """
    values = fields(parse_object(raw, max_bytes), INTERACTION_REQUIRED, INTERACTION_OPTIONAL)
    if (values["kind"] == "rating") != ("rating" in values):
        if values["kind"] == "rating":
            raise MissingField("missing_field", "rating", 'kind "rating" needs a rating value')
        raise UnknownField("unexpected_field", "rating", f'a rating belongs to kind "rating", not {values["kind"]!r}')
    return Interaction(**values)


def decode_reco_request(raw: bytes, *, max_bytes: int) -> RecoRequest:
    """Decode a reco-requests message.

    >>> decode_reco_request(b'{"request_id": "r1", "user_id": "u", "k": 5, "ts": 1, "exclude": ["a"]}',
    ...                     max_bytes=1000)
    RecoRequest(request_id='r1', user_id='u', k=5, ts=1.0, exclude=('a',))
    """
    return RecoRequest(**fields(parse_object(raw, max_bytes), RECO_REQUEST_REQUIRED, RECO_REQUEST_OPTIONAL))


__all__ = ["InvalidEvent", "decode_interaction", "decode_label", "decode_reco_request", "decode_transaction",
           "parse_object"]
