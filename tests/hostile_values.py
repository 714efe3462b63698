"""Hostile JSON values for property-based tests of the input contracts (unit and against a worker):
wrong types, NaN and infinities, huge and tiny numbers, lone surrogates, control characters, empty
and oversized strings, timestamps far outside the window in both formats, nesting."""

from __future__ import annotations

import json

from hypothesis import strategies as st


def hostile_scalars(now: float, max_past_s: float, max_future_s: float) -> st.SearchStrategy:
    """Times outside the window keep an hour's margin from its edges: a worker decodes a little later."""
    return st.one_of(
        st.none(), st.booleans(), st.integers(), st.integers(min_value=10 ** 300, max_value=10 ** 310),
        st.floats(), st.just(1.7e308), st.just(-1.7e308), st.just(5e-324),
        st.text(max_size=40), st.text(min_size=100, max_size=300),
        st.sampled_from(["\ud800", "a\udfffb", "x" * 129, "", "a\nb", "\x00", "\u2028", "9999-12-31T23:59:59Z",
                         "0001-01-01T00:00:00+23:59", "2026-11-24T10:00:00", "yesterday", "NaN", "-1e400"]),
        st.floats(min_value=now + max_future_s + 3600, max_value=1e11),
        st.floats(min_value=0, max_value=now - max_past_s - 3600))


def hostile_values(now: float, max_past_s: float, max_future_s: float) -> st.SearchStrategy:
    return st.recursive(hostile_scalars(now, max_past_s, max_future_s),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=3), max_leaves=8)


def hostile_documents() -> st.SearchStrategy:
    """Whole messages that are not an event at all."""
    return st.one_of(
        st.binary(max_size=300),
        st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(1, 50_000)),
        st.builds(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth, st.integers(1, 20_000)),
        st.sampled_from([b"null", b"1", b'"x"', b"[]", b"true", b"\xff\xfe{}", b"", b"x" * 70_000,
                         b'{"event_id": "\\ud800"}', b'{"a": NaN}', b'{"a": 1e999}', b"9" * 5000]))


def encode(doc) -> bytes:
    """JSON as any producer could send it: NaN/Infinity literals and lone surrogates included."""
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")
