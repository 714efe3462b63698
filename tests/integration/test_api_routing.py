"""Two workers: a request for a user whose partition the other worker owns is answered by the
owner (forwarded once), and its decision is still one per event, whichever worker or way it came."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from aiokafka.partitioner import DefaultPartitioner
from api_client import api_settings, call, decisions_for, keys, post_score, produce, transaction, transactions_counted
from waiting import wait_until

from agents.api.forwarding import ForwardKeys
from agents.dev.probes import metric
from agents.dev.stack import start_worker, wait_ready

pytestmark = pytest.mark.integration

TOKENS, API_KEYS = keys(("payments", "score,recommend"), ("greedy", "recommend"))
USERS = [f"u-route-{i}" for i in range(12)]


def served_by(port: int, user: str) -> str | None:
    status, head, _ = call(port, "GET", f"/v1/recommendations/{user}?k=2", TOKENS["payments"])
    return head.get("X-Streamsense-Served-By") if status == 200 else None


def stable_owners(ports: list[int], timeout: float = 90.0) -> dict[str, str]:
    """Each user's serving worker, once both workers name the same one for every user and the
    users are spread over both (the group has settled after the second worker joined)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = [{u: served_by(p, u) for u in USERS} for p in ports]
        if seen[0] == seen[1] and None not in seen[0].values() and len(set(seen[0].values())) == 2:
            return seen[0]
        time.sleep(1.0)
    raise AssertionError(f"owners never settled: {seen}")


def test_a_request_to_the_wrong_worker_is_answered_by_the_owner(broker, redis_url, tmp_path):
    # A short prediction cache TTL keeps the settling probes honest (each asks the owner again).
    # A low rate lets the last check outrun the refill however slow forwarding is on a loaded machine.
    settings = api_settings(broker, redis_url, tmp_path, API_KEYS, api_reco_cache_ttl_s=0.0, api_rate_per_s=20.0,
                            api_burst=60)
    (a, port_a), (b, port_b) = start_worker(settings, 0, tmp_path), start_worker(settings, 1, tmp_path)
    with a, b:
        wait_ready(a, port_a)
        wait_ready(b, port_b)
        owners = stable_owners([port_a, port_b])
        url = {port_a: f"http://127.0.0.1:{port_a}", port_b: f"http://127.0.0.1:{port_b}"}
        assert set(owners.values()) == set(url.values())
        answers, sent = {}, {}
        for i, user in enumerate(USERS):
            # Every user's first event to the worker that does not own it, the second to the owner.
            wrong = port_b if owners[user] == url[port_a] else port_a
            right = port_a if wrong == port_b else port_b
            for n, port in enumerate((wrong, right)):
                sent[f"r-{i}-{n}"] = transaction(f"r-{i}-{n}", user=user, amount=10.0 + n)
                status, head, decision = post_score(port, sent[f"r-{i}-{n}"], TOKENS["payments"])
                assert status == 200 and head["X-Streamsense-Served-By"] == owners[user]
                answers[decision["event_id"]] = decision
        # One forwarded event also comes over Kafka, the same bytes: still one decision.
        asyncio.run(produce(settings, [sent["r-0-0"]]))
        records = asyncio.run(decisions_for(settings, set(answers), at_least=len(answers) + 1))
        # ... and the worker the API routed that user to is the one that consumes its partition.
        owner_port = port_a if owners[USERS[0]] == url[port_a] else port_b

        def redelivered() -> list[float]:
            return [metric(p, "streamsense_events_total", topic=settings.topics.transactions, outcome="redelivered")
                    for p in (owner_port, port_a + port_b - owner_port)]

        # The record can reach the topic before the worker's counter moves (or be the unpublished sweep's copy).
        wait_until(lambda: redelivered() != [0.0, 0.0], timeout=30, what="the Kafka copy counted as redelivered")
        assert redelivered() == [1.0, 0.0]
        assert not [r for r in records if "dead_letter" in r]
        assert all(r == answers[r["event_id"]] for r in records) and {r["event_id"] for r in records} == set(answers)
        # The owner kept every user's state: two events each, counted once.
        counts = {u: asyncio.run(transactions_counted(settings, u)) for u in USERS}
        assert counts == {u: 2 for u in USERS}
        ids_cannot_change_the_route(settings, port_a, port_b, url)
        a_forwarded_request_is_not_forwarded_again(settings, owners, url)
        forwarded_requests_count_against_the_client_where_they_arrive(settings, owners, url)


def ids_cannot_change_the_route(settings, port_a: int, port_b: int, url: dict[int, str]) -> None:
    """User ids spelling other routes (encoded as %2F on the way in) stay ids: whichever worker owns
    them answers a recommendation for exactly that id, never /metrics, /v1/models or Faust's pages."""
    ids = [f"x{i}/../../../{route}" for i in range(6) for route in ("metrics", "v1/models", "router/topics")]
    partitions = {DefaultPartitioner()(u.encode(), list(range(4)), list(range(4))) for u in ids}
    assert partitions == {0, 1, 2, 3}  # so both workers own some: some are forwarded
    served = set()
    for port in (port_a, port_b):
        for user in ids:
            status, head, reco = call(port, "GET", f"/v1/recommendations/{quote(user, safe='')}?k=2",
                                      TOKENS["payments"])
            assert status == 200 and reco["user_id"] == user and "items" in reco, (user, status, reco)
            served.add((port, head["X-Streamsense-Served-By"]))
    assert {by for _, by in served} == set(url.values()) and len(served) == 4  # each worker forwarded some


def a_forwarded_request_is_not_forwarded_again(settings, owners: dict[str, str], url: dict[int, str]) -> None:
    """A request carrying a good mark is served where it lands, even by a worker that does not own the
    user (the owner moved meanwhile): there is no second hop."""
    signer = ForwardKeys.from_settings(settings)
    user = USERS[0]
    port, here = next((p, u) for p, u in url.items() if u != owners[user])
    path = f"/v1/recommendations/{user}?k=2"
    mark = signer.sign(here, "GET", path, b"", f"Bearer {TOKENS['payments']}")
    status, head, _ = call(port, "GET", path, TOKENS["payments"], headers={"X-Streamsense-Forward": mark})
    assert status == 200 and head["X-Streamsense-Served-By"] == here != owners[user]


def forwarded_requests_count_against_the_client_where_they_arrive(settings, owners: dict[str, str],
                                                                   url: dict[int, str]) -> None:
    """A client sending everything to a worker that forwards it all still meets its rate there."""
    user = USERS[0]
    port = next(p for p, u in url.items() if u != owners[user])
    started, answers = time.monotonic(), []
    with ThreadPoolExecutor(8) as pool:
        while not any(status == 429 for status, _, _ in answers):
            assert time.monotonic() - started < 60, "never limited"
            answers += pool.map(lambda _: call(port, "GET", f"/v1/recommendations/{user}?k=2", TOKENS["greedy"]),
                                range(40))
            served = [head["X-Streamsense-Served-By"] for status, head, _ in answers if status == 200]
            assert len(served) <= settings.api_burst + settings.api_rate_per_s * (time.monotonic() - started) + 1
    assert set(served) == {owners[user]} and all(status in (200, 429) for status, _, _ in answers)
