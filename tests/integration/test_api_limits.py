"""The API port against one worker with small limits: Faust's own pages are not served, slow clients
are cut off, connections and requests in progress are capped (503 + Retry-After), numeric
parameters are bounded (422, never 500), a forwarding mark is good once, for its own request, for a
few seconds, and refusals carry a stable code and a request id, never internal text."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import quote

import pytest
from api_client import api_settings, call, keys, post_score, transaction

from agents.api.forwarding import ForwardKeys
from agents.dev.probes import metric
from agents.dev.stack import start_worker, wait_ready

pytestmark = pytest.mark.integration

TOKENS, API_KEYS = keys(("payments", "score,recommend"), ("shop", "recommend"))
HEADER_TIMEOUT_S, BODY_TIMEOUT_S, MAX_CONNECTIONS, MAX_PENDING = 2.0, 3.0, 6, 2


@pytest.fixture(scope="module")
def api(broker, redis_url, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("api-limits")
    settings = api_settings(broker, redis_url, log_dir, API_KEYS, api_header_timeout_s=HEADER_TIMEOUT_S,
                            api_body_timeout_s=BODY_TIMEOUT_S, api_max_connections=MAX_CONNECTIONS,
                            api_max_pending=MAX_PENDING)
    proc, port = start_worker(settings, 0, log_dir)
    with proc:
        wait_ready(proc, port)
        yield settings, port


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def until_closed(sock: socket.socket, trickle: bytes = b"", limit_s: float = 20.0) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock`` (sending one ``trickle`` byte every 0.2 s meanwhile)
    and what it sent before."""
    started, received = time.monotonic(), b""
    sock.settimeout(0.2)
    while time.monotonic() - started < limit_s:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            try:
                if trickle:
                    sock.sendall(trickle)
            except OSError:  # reset or broken pipe: the server closed it
                break
            continue
        except ConnectionResetError:
            break
        if not data:
            break
        received += data
    else:
        raise AssertionError(f"still open after {limit_s} s; received {received[:200]!r}")
    sock.close()
    return time.monotonic() - started, received


def answer_head(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(65536)
        assert data, f"closed before answering: {received!r}"
        received += data
    return received


def error_body(raw: bytes) -> dict:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def assert_opaque(status: int, head: dict, body: dict, code: str) -> None:
    """A refusal names its code and the request id the log has the detail under, nothing internal."""
    assert status >= 400 and body["error"] == code and body["request_id"] == head["X-Request-Id"]
    text = json.dumps(body)
    assert "Traceback" not in text and "127.0.0.1" not in text and "Error:" not in text


def test_faust_pages_are_not_served(api):
    _, port = api
    for path in ("/router/", "/router/topics", "/router/transactions/", "/table/", "/graph/", "/assignment/"):
        status, _, _ = call(port, "GET", path, TOKENS["payments"])
        assert status == 404, path


def test_a_client_slow_to_send_its_headers_is_cut_off(api):
    _, port = api
    sock = connect(port)
    sock.sendall(b"GET /v1/recommendations/u-slow?k=2 HTTP/1.1\r\nHost: w\r\nX-Slow: ")
    elapsed, received = until_closed(sock, trickle=b"a")
    assert received == b"" and HEADER_TIMEOUT_S - 0.1 <= elapsed < HEADER_TIMEOUT_S + 5


def test_a_client_slow_to_send_its_body_gets_408_and_is_cut_off(api):
    _, port = api
    sock = connect(port)
    sock.sendall(b"POST /v1/score HTTP/1.1\r\nHost: w\r\nAuthorization: Bearer " + TOKENS["payments"].encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{")
    elapsed, received = until_closed(sock, trickle=b" ")
    assert received.startswith(b"HTTP/1.1 408") and error_body(received)["error"] == "body_timeout"
    assert BODY_TIMEOUT_S - 0.1 <= elapsed < BODY_TIMEOUT_S + 8


def test_connections_beyond_the_cap_are_answered_503_and_closed(api):
    _, port = api
    held = [connect(port) for _ in range(MAX_CONNECTIONS)]
    try:
        _, received = until_closed(connect(port))
        head = received.split(b"\r\n\r\n", 1)[0].decode()
        assert head.startswith("HTTP/1.1 503") and "Retry-After: 1" in head
        body = error_body(received)
        assert body["error"] == "too_many_connections" and body["request_id"] in head
    finally:
        for sock in held:
            sock.close()
    # The held connections are counted until the worker sees them go: then it serves again.
    deadline = time.monotonic() + 10
    while call(port, "GET", "/health")[0] != 200:
        assert time.monotonic() < deadline, "the worker never served again after the held connections closed"
        time.sleep(0.1)


def test_requests_in_progress_beyond_the_bound_get_503_with_retry_after(api):
    settings, port = api
    body = json.dumps(transaction("limits-held", user="u-held")).encode()
    held = []
    for _ in range(MAX_PENDING):  # each sends its headers and half its body, then waits
        sock = connect(port)
        sock.sendall(b"POST /v1/score HTTP/1.1\r\nHost: w\r\nAuthorization: Bearer " + TOKENS["payments"].encode()
                     + f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body[:10])
        held.append(sock)
    deadline = time.monotonic() + BODY_TIMEOUT_S
    while metric(port, "streamsense_api_pending") < MAX_PENDING:
        assert time.monotonic() < deadline, "the held requests never counted as in progress"
        time.sleep(0.05)
    status, head, answer = post_score(port, transaction("limits-refused", user="u-held"), TOKENS["payments"])
    assert status == 503 and head["Retry-After"] == "1"
    assert_opaque(status, head, answer, "overloaded")
    for sock in held:  # the held requests complete and are answered
        sock.sendall(body[10:])
        assert answer_head(sock).startswith(b"HTTP/1.1 200")
        sock.close()
    assert post_score(port, transaction("limits-after", user="u-held"), TOKENS["payments"])[0] == 200


@pytest.mark.parametrize("k", ["9" * 5000, "1" + "0" * 400, "101", "0", "-1", "1e3", "0x10", "\uff11", " 5", ""])
def test_numeric_parameters_out_of_bounds_are_422_never_500(api, k):
    _, port = api
    status, head, body = call(port, "GET", f"/v1/recommendations/u-k?k={quote(k)}", TOKENS["shop"])
    assert (status, body["field"]) == (422, "k")
    assert_opaque(status, head, body, "out_of_range")


def forwarded_score(port: int, doc: dict, mark: str, token: str = TOKENS["payments"]):
    return call(port, "POST", "/v1/score", token, json.dumps(doc).encode(), headers={"X-Streamsense-Forward": mark})


def test_a_forwarding_mark_is_good_for_its_own_request_once_and_briefly(api):
    settings, port = api
    me = call(port, "GET", "/v1/recommendations/u-me?k=1", TOKENS["payments"])[1]["X-Streamsense-Served-By"]
    signer, auth = ForwardKeys.from_settings(settings), f"Bearer {TOKENS['payments']}"
    doc = transaction("fwd-1", user="u-fwd")
    raw = json.dumps(doc).encode()
    good = signer.sign(me, "POST", "/v1/score", raw, auth)
    assert forwarded_score(port, doc, good)[0] == 200
    status, head, body = forwarded_score(port, doc, good)  # the same mark again
    assert status == 403 and "replayed" in body["message"]
    assert_opaque(status, head, body, "forward_refused")
    other = transaction("fwd-2", user="u-fwd")
    refused = {
        "tampered body": forwarded_score(port, other, signer.sign(me, "POST", "/v1/score", raw, auth)),
        "another client": forwarded_score(port, doc, signer.sign(me, "POST", "/v1/score", raw, "Bearer x")),
        "another worker": forwarded_score(port, doc, signer.sign("http://10.9.9.9:6066", "POST", "/v1/score",
                                                                 raw, auth)),
        "unknown key": forwarded_score(port, doc, ForwardKeys.derive([("k0", b"not the key" * 4)], 10.0).sign(
            me, "POST", "/v1/score", raw, auth)),
        "garbage": forwarded_score(port, doc, "1"),
    }
    expired = ForwardKeys.from_settings(settings)
    expired.clock = lambda: time.time() - settings.api_forward_ttl_s - 1
    refused["expired"] = forwarded_score(port, doc, expired.sign(me, "POST", "/v1/score", raw, auth))
    refused["second hop"] = forwarded_score(port, doc, signer.sign(me, "POST", "/v1/score", raw, auth, hop=2))
    for why, (status, _, body) in refused.items():
        assert (status, body["error"]) == (403, "forward_refused"), why
