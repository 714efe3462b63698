"""The forwarding mark: good for its own request (target, method, path, body, client), for
``ttl_s`` either side of its timestamp, once, on one hop; signed with the newest key, verified with any."""

from __future__ import annotations

import pytest

from agents.api.forwarding import ForwardKeys, ForwardRefused

KEY, NEW_KEY = ("k0", b"k" * 32), ("k1", b"n" * 32)
REQUEST = ("http://w2:6066", "GET", "/v1/recommendations/u%2F..%2Fmetrics?k=3", b"", "Bearer t")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def keys(*ring, clock=None) -> ForwardKeys:
    return ForwardKeys.derive(list(ring or [KEY]), ttl_s=10.0, clock=clock or Clock())


@pytest.mark.parametrize("position, changed", [
    (0, "http://w3:6066"), (1, "POST"), (2, "/metrics"), (2, "/v1/recommendations/u/../metrics?k=3"),
    (2, "/v1/recommendations/u%2F..%2Fmetrics?k=4"), (3, b"{}"), (4, "Bearer other")])
def test_a_mark_for_one_request_is_refused_for_any_other(position, changed) -> None:
    signer = keys()
    mark = signer.sign(*REQUEST)
    other = list(REQUEST)
    other[position] = changed
    with pytest.raises(ForwardRefused, match="bad signature"):
        signer.verify(mark, *other)
    signer.verify(mark, *REQUEST)  # the refusals did not use it up


@pytest.mark.parametrize("skew", [-10.5, 10.5, -1e9])
def test_a_mark_outside_its_window_is_expired(skew) -> None:
    clock = Clock()
    signer = keys(clock=clock)
    mark = signer.sign(*REQUEST)
    clock.now += skew
    with pytest.raises(ForwardRefused, match="expired"):
        signer.verify(mark, *REQUEST)


def test_a_mark_is_good_once_and_its_nonce_is_forgotten_after_it_expires() -> None:
    clock = Clock()
    signer = keys(clock=clock)
    mark = signer.sign(*REQUEST)
    signer.verify(mark, *REQUEST)
    clock.now += 9.0
    with pytest.raises(ForwardRefused, match="replayed"):
        signer.verify(mark, *REQUEST)
    clock.now += 2.0
    signer.verify(signer.sign(*REQUEST), *REQUEST)  # the next mark clears the expired nonce
    assert len(signer.seen.expiry) == 1


def test_a_second_hop_is_refused_even_when_signed() -> None:
    signer = keys()
    with pytest.raises(ForwardRefused, match="second hop"):
        signer.verify(signer.sign(*REQUEST, hop=2), *REQUEST)


@pytest.mark.parametrize("mark", ["", "v=1", "v=1;kid=k0;ts=x;hop=1;nonce=n;sig=s",
                                  "v=2;kid=k0;ts=1;hop=1;nonce=n;sig=s", "v=1;kid=k9;ts=1000;hop=1;nonce=n;sig=s"])
def test_malformed_or_unknown_marks_are_refused(mark) -> None:
    with pytest.raises(ForwardRefused):
        keys().verify(mark, *REQUEST)


def test_the_newest_key_signs_and_every_configured_key_verifies() -> None:
    clock = Clock()
    old, rotated = keys(KEY, clock=clock), keys(NEW_KEY, KEY, clock=clock)
    assert ";kid=k1;" in rotated.sign(*REQUEST)
    rotated.verify(old.sign(*REQUEST), *REQUEST)  # a worker not yet rotated forwards to one that is
    with pytest.raises(ForwardRefused):
        old.verify(rotated.sign(*REQUEST), *REQUEST)
    with pytest.raises(ForwardRefused, match="bad signature"):
        keys(("k0", b"another key" * 3)).verify(old.sign(*REQUEST), *REQUEST)
