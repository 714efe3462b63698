"""Finding a user's owner from the group's host map, and noticing two workers advertising one URL."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from agents.api.routing import owner_url
from agents.web import shared_url_warning, shares_its_url
from schemas.settings import Settings


def worker(url: str, host_map: dict, assigned: list[int], topic: str = "transactions") -> SimpleNamespace:
    """What readiness reads of a Faust app: its URL, its assignment and the group's host map."""
    return SimpleNamespace(conf=SimpleNamespace(canonical_url=url),
                           consumer=SimpleNamespace(assignment=lambda: {TP(topic, p) for p in assigned}),
                           assignor=SimpleNamespace(external_topics_metadata=lambda: host_map))


RUNTIME = SimpleNamespace(settings=Settings())


def test_two_workers_advertising_one_url_are_noticed() -> None:
    # Both advertise http://0.0.0.0:6066: the map keeps one entry, the last member's partitions.
    collapsed = {"http://0.0.0.0:6066": {"transactions": [1, 3]}}
    first, second = worker("http://0.0.0.0:6066", collapsed, [0, 2]), worker("http://0.0.0.0:6066", collapsed, [1, 3])
    assert shares_its_url(first, RUNTIME)  # the one whose partitions the map lost says so in /ready
    # The other finds its own partitions under the URL; requests for the lost ones get 503, not a wrong owner.
    assert not shares_its_url(second, RUNTIME) and owner_url(collapsed, "transactions", 0) is None
    assert "http://0.0.0.0:6066" in shared_url_warning(second) and "STREAMSENSE_ADVERTISED_URL" in shared_url_warning(
        second)


def test_workers_with_their_own_urls_find_each_others_partitions() -> None:
    host_map = {"http://worker-1:6066": {"transactions": [0, 2]}, "http://worker-2:6066": {"transactions": [1, 3]}}
    assert not shares_its_url(worker("http://worker-1:6066", host_map, [0, 2]), RUNTIME)
    assert [owner_url(host_map, "transactions", p) for p in range(4)] == ["http://worker-1:6066",
                                                                          "http://worker-2:6066"] * 2
