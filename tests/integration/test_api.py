"""The HTTP API against one worker on the real broker and Redis: authentication, scopes, limits,
validation, one decision per event whichever way it arrives, recommendations and their cache,
a property test that finds no 5xx, and schemathesis driving every operation of the OpenAPI
document the worker serves (which openapi-spec-validator accepts)."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import schemathesis
from api_client import api_settings, call, decisions_for, keys, post_score, produce, transaction, transactions_counted
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from openapi_spec_validator import validate as validate_openapi
from redis.asyncio import Redis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agents.dev.stack import start_worker, wait_ready
from agents.fraud_processor import FraudProcessor
from agents.stores.keys import RedisKeys

pytestmark = pytest.mark.integration

TOKENS, API_KEYS = keys(("payments", "score"), ("shop", "recommend"), ("ops", "admin,score,recommend"),
                        ("fuzz", "score,recommend"), ("greedy", "score"),
                        ("contract", "admin,score,recommend"))


@pytest.fixture(scope="module")
def api(broker, redis_url, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("api")
    settings = api_settings(broker, redis_url, log_dir, API_KEYS, api_rate_per_s=50.0, api_burst=50,
                            max_event_bytes=4096)
    proc, port = start_worker(settings, 0, log_dir)
    with proc:
        wait_ready(proc, port)
        yield settings, port


def score(port: int, doc: dict | bytes, token: str | None = TOKENS["payments"]):
    return post_score(port, doc, token)


def test_refusals_say_what_is_wrong(api):
    settings, port = api
    status, head, body = score(port, transaction("r-1"), token=None)
    assert (status, body["error"], head.get("WWW-Authenticate")) == (401, "unauthenticated", "Bearer")
    assert score(port, transaction("r-1"), token="ss_not-a-key")[0] == 401
    status, _, body = score(port, transaction("r-1"), token=TOKENS["shop"])
    assert (status, body["error"]) == (403, "forbidden") and "score" in body["message"]
    status, _, body = score(port, transaction("r-1", amount="12"))
    assert (status, body["field"]) == (422, "amount")
    status, _, body = score(port, b'{"event_id": "r-1", "amount": NaN')
    assert status == 422 and body["error"]
    status, _, body = score(port, {k: v for k, v in transaction("r-1").items() if k != "merchant_id"})
    assert (status, body["field"]) == (422, "merchant_id")
    status, _, body = score(port, json.dumps(transaction("r-1", features={"x": 1.0})).encode() + b" " * 5000)
    assert (status, body["error"]) == (413, "too_large")
    status, _, body = call(port, "GET", "/v1/recommendations/u-1?k=lots", TOKENS["shop"])
    assert (status, body["field"]) == (422, "k")
    status, _, body = call(port, "GET", "/v1/recommendations/u-1?k=0", TOKENS["shop"])
    assert (status, body["field"]) == (422, "k")
    assert call(port, "GET", "/v1/models", TOKENS["payments"])[0] == 403
    # None of the refused events was decided.
    assert asyncio.run(transactions_counted(settings, "u-api")) == 0


def test_rate_limit_answers_429_with_retry_after(api):
    settings, port = api
    # 32 at a time outrun the refill (50/s) unless a request takes over 0.64 s (eight at a time, over
    # 0.16 s, did not on a machine loaded by other test runs).
    started = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda _: score(port, b"{}", token=TOKENS["greedy"]), range(300)))
    elapsed = time.monotonic() - started
    limited = [a for a in answers if a[0] == 429]
    admitted = [a for a in answers if a[0] != 429]
    assert all(a[0] == 422 for a in admitted) and limited
    assert settings.api_burst <= len(admitted) <= settings.api_burst + settings.api_rate_per_s * elapsed + 1
    assert limited[0][2]["error"] == "rate_limited" and int(limited[0][1]["Retry-After"]) >= 1


def test_http_decision_is_the_published_record_and_kafka_copy_is_not_decided_again(api):
    settings, port = api
    first = transaction("h-1", user="u-both")
    status, head, decision = score(port, first)
    assert status == 200 and decision["event_id"] == "h-1" and decision["decision"] in {"approve", "review", "decline"}
    assert head["X-Streamsense-Served-By"].endswith(f":{port}")
    # The client retries over HTTP, then the same event also arrives over Kafka.
    assert score(port, first)[2] == decision
    asyncio.run(produce(settings, [first]))
    # And the other way round: Kafka first, then HTTP.
    second = transaction("h-2", user="u-both", amount=40.0)
    asyncio.run(produce(settings, [second]))
    records = asyncio.run(decisions_for(settings, {"h-1", "h-2"}, at_least=3))
    by_event = {}
    for r in records:
        assert "dead_letter" not in r, r  # the Kafka copy is not a duplicate dead letter
        by_event.setdefault(r["event_id"], []).append(r)
    assert len(by_event.get("h-1", [])) >= 1 and len(by_event.get("h-2", [])) >= 1
    assert by_event["h-1"] and all(r == decision for r in by_event["h-1"])
    status, _, again = score(port, second)
    assert status == 200 and again == by_event["h-2"][0]
    assert len({json.dumps(r, sort_keys=True) for r in by_event["h-2"]}) == 1
    # State counted each event once.
    assert asyncio.run(transactions_counted(settings, "u-both")) == 2


def test_a_client_gets_a_stored_decision_only_for_an_event_it_submitted(api):
    settings, port = api
    tx = transaction("own-1", user="u-own")
    status, _, decision = score(port, tx)  # submitted by "payments"
    assert status == 200
    status, _, body = score(port, tx, token=TOKENS["fuzz"])  # the same body from another client
    assert (status, body["error"], body["field"]) == (409, "conflict", "event_id") and "score" not in body
    assert score(port, tx)[2] == decision  # its owner asks again: the stored decision
    assert asyncio.run(transactions_counted(settings, "u-own")) == 1


def test_an_event_id_taken_with_another_payload_is_a_conflict_never_the_stored_decision(api):
    settings, port = api
    decoy = transaction("c-1", user="u-conflict", amount=1.0)  # a harmless body takes the event_id first
    status, _, stored = score(port, decoy)
    assert status == 200
    real = {**decoy, "amount": 4999.0, "merchant_id": "m-risky"}
    status, _, body = score(port, real)
    assert (status, body["error"], body["field"]) == (409, "conflict", "event_id") and "score" not in body
    asyncio.run(produce(settings, [real]))  # the real transaction over Kafka
    records = asyncio.run(decisions_for(settings, {"c-1"}, at_least=2))
    assert [r for r in records if "dead_letter" not in r] == [stored]  # only the decoy's own decision
    assert [r["dead_letter"] for r in records if "dead_letter" in r] == ["conflict"]
    assert asyncio.run(transactions_counted(settings, "u-conflict")) == 1


def test_a_decision_answered_but_never_published_is_published_by_the_sweep(api):
    settings, _ = api
    tx_doc = transaction("h-crash", user="u-crash")
    raw = json.dumps(tx_doc).encode()

    async def answered_then_died() -> tuple[bytes, list[dict], int]:
        # What a worker leaves behind when it dies after answering and before the broker's ack:
        # the committed decision, its event_id in the unpublished set, nothing on the topic.
        redis = Redis.from_url(settings.redis_url.get_secret_value())
        try:
            processor = FraudProcessor.on_redis(redis, settings).transactions
            answers, _, durable = await processor.on_api_transactions([(raw, processor.decode(raw, time.time()), None)],
                                                                      time.time())
            assert durable
            records = await decisions_for(settings, {"h-crash"}, at_least=1)  # the running worker's sweep
            return answers[0], records, await redis.zcard(RedisKeys.from_settings(settings).unpublished())
        finally:
            await redis.aclose()

    answer, records, left = asyncio.run(answered_then_died())
    assert records and all(r == json.loads(answer) for r in records) and left == 0


def test_recommendations_models_and_openapi(api):
    settings, port = api
    status, head, reco = call(port, "GET", "/v1/recommendations/u-reco?k=3", TOKENS["shop"])
    assert status == 200 and reco["user_id"] == "u-reco" and len(reco["items"]) <= 3
    assert reco["strategy"] in {"personal", "popular", "explore"} and head["X-Streamsense-Cache"] == "miss"
    status, head, cached = call(port, "GET", "/v1/recommendations/u-reco?k=3", TOKENS["shop"])
    assert (status, head["X-Streamsense-Cache"], cached) == (200, "hit", reco)
    assert call(port, "GET", "/v1/recommendations/u-reco?k=4", TOKENS["shop"])[1]["X-Streamsense-Cache"] == "miss"
    status, _, models = call(port, "GET", "/v1/models", TOKENS["ops"])
    assert status == 200 and models["fraud"]["model"] and models["recommendations"]["model"] == "biased-mf"
    status, _, doc = call(port, "GET", "/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1") and "/v1/score" in doc["paths"]
    busy = doc["paths"]["/v1/score"]["post"]["responses"]["503"]
    assert {"Retry-After", "X-Request-Id"} <= set(busy["headers"])
    assert "request_id" in doc["components"]["schemas"]["Error"]["required"]
    assert "422" in doc["paths"]["/v1/recommendations/{user_id}"]["get"]["responses"]


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30))


@hsettings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["event_id", "ts", "user_id", "merchant_id", "amount", "currency", "country",
                                     "channel", "device_id", "features", "extra"]), JSON_SCALARS, max_size=10),
    st.builds(lambda i, amount, channel, features: transaction(f"p-{i}", user=f"u-p{i % 7}", amount=amount,
                                                                channel=channel, features=features),
              st.integers(0, 10 ** 6), st.floats(0, 1e6), st.sampled_from(["web", "app", "pos", "atm", "phone", "x"]),
              st.dictionaries(st.text(min_size=1, max_size=8), st.floats(-1e9, 1e9), max_size=4))),
    user=st.text(max_size=40), k=st.text(max_size=6))
def test_property_no_input_gets_a_5xx(api, body, user, k):
    _, port = api
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, answer = score(port, raw, token=TOKENS["fuzz"])
    assert status < 500, answer
    assert status in {200, 409, 422, 429}, (status, answer)  # 409: an event_id drawn again with another body
    status, _, answer = call(port, "GET", f"/v1/recommendations/{quote(user, safe='')}?k={quote(k)}", TOKENS["fuzz"])
    assert status < 500, answer


# What schemathesis checks on every answer: no 5xx, a status the document lists for the operation,
# its content type, headers and body schema, and that an operation needing a key refuses none.
CONTRACT_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_headers_conformance, response_schema_conformance, ignored_auth]


def test_the_served_openapi_document_is_valid(api):
    _, port = api
    status, _, doc = call(port, "GET", "/v1/openapi.json")
    assert status == 200
    validate_openapi(doc)  # raises on an invalid document (it used to: PointerToNowhere '/$defs/id')
    operations = [op for path in doc["paths"].values() for op in path.values()]
    assert all(op.get("operationId") for op in operations)
    assert len({op["operationId"] for op in operations}) == len(operations)


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_5xx_and_no_undocumented_status(api, mode):
    """Bounded: 30 generated requests per mode, spread over every operation (about 10 s on a
    loaded 2-core machine). Most transactions it draws are refused (their ts is outside the accepted
    window around the wall clock, which a schema cannot say); each refusal must be documented."""
    _, port = api
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/v1/openapi.json")
    auth = {"Authorization": f"Bearer {TOKENS['contract']}"}
    seen = set()

    # derandomized: the same requests every run, so the coverage asserted below cannot come and go
    @hsettings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None,
               derandomize=True)
    @given(case=schema.as_strategy(mode, headers=auth))
    def drive(case):
        response = case.call_and_validate(checks=CONTRACT_CHECKS)
        seen.add((case.operation.label, response.status_code))

    drive()
    operations = [op.ok() for op in schema.get_all_operations()]
    if mode == schemathesis.GenerationMode.NEGATIVE:  # only what takes input can be sent invalid input
        operations = [op for op in operations if op.body or op.path_parameters or op.query]
    assert {label for label, _ in seen} == {op.label for op in operations}
