"""The API's error boundary on a worker built as in production (real Redis, no broker): when
publishing fails, when feature or model code fails, or on a bug, the answer is a 5xx with a stable
code and a request id; the exception's text (hosts, ports, credentials) reaches the log under that
id and never the body."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from unittest import mock

import pytest
from aiohttp import StreamReader
from aiohttp.test_utils import make_mocked_request
from aiokafka.errors import KafkaConnectionError

from agents.api.auth import new_api_key
from agents.api.server import FORWARD, Api
from agents.transaction_path import ScoringFailed
from agents.worker import build_worker
from schemas.settings import SecretStr, Settings

SECRET_TEXT = "redis://:hunter2@10.1.2.3:6379"
TOKEN, ENTRY = new_api_key("payments", ["score"])


@pytest.fixture
async def api(redis_url: str, tmp_path):
    settings = Settings(redis_url=SecretStr(redis_url), app_id=f"api-errors-{uuid.uuid4().hex[:6]}",
                        data_dir=str(tmp_path), api_keys=ENTRY)
    topology, runtime = build_worker(settings, web_enabled=False)
    await runtime.start()
    yield Api(topology, runtime), topology.app.web
    await runtime.stop()


def scoring_request(api: Api) -> mock.Mock:
    """POST /v1/score with a good transaction, marked as forwarded here (so no partition owner is needed)."""
    body = json.dumps({"event_id": f"e-{uuid.uuid4().hex[:6]}", "ts": 1_795_514_400.0, "user_id": "u",
                       "merchant_id": "m", "amount": 1.0, "currency": "EUR", "country": "FR",
                       "channel": "app"}).encode()
    authorization = f"Bearer {TOKEN}"
    stream = StreamReader(mock.Mock(_reading_paused=False), 2 ** 16, loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    mark = api.forwarding.sign(api.me, "POST", "/v1/score", body, authorization)
    return make_mocked_request("POST", "/v1/score", payload=stream,
                               headers={"Authorization": authorization, FORWARD: mark,
                                        "Content-Length": str(len(body))})


async def answer(api: Api, web, serve=None) -> tuple[int, dict, dict]:
    response = await api.call(web, scoring_request(api), "/v1/score", "score", serve or api.score)
    return response.status, dict(response.headers), json.loads(response.body)


@pytest.mark.parametrize("failure, status, code", [
    (KafkaConnectionError(f"Unable to bootstrap from {SECRET_TEXT}"), 503, "unavailable"),
    (RuntimeError(f"commit kept conflicting on {SECRET_TEXT}"), 503, "unavailable"),
    (ScoringFailed(f"ValueError: {SECRET_TEXT}"), 500, "scoring_failed"),
])
async def test_a_failed_decision_answers_a_code_and_a_request_id_not_the_exception(api, caplog, failure, status,
                                                                                   code):
    api_, web = api
    api_.batcher.submit = mock.AsyncMock(side_effect=failure)
    with caplog.at_level(logging.WARNING, logger="agents.api.server"):
        got, head, body = await answer(api_, web)
    assert (got, body["error"]) == (status, code) and body["request_id"] == head["X-Request-Id"]
    assert "hunter2" not in json.dumps(body) and "10.1.2.3" not in json.dumps(body)
    assert status != 503 or head["Retry-After"] == "1"
    logged = [r.getMessage() for r in caplog.records if body["request_id"] in r.getMessage()]
    assert logged and SECRET_TEXT in logged[0]


async def test_a_bug_answers_500_internal_and_the_traceback_goes_to_the_log(api, caplog):
    api_, web = api

    async def broken(*_):
        raise KeyError(SECRET_TEXT)

    with caplog.at_level(logging.ERROR, logger="agents.api.server"):
        status, head, body = await answer(api_, web, broken)
    assert (status, body["error"]) == (500, "internal") and "hunter2" not in json.dumps(body)
    record = next(r for r in caplog.records if body["request_id"] in r.getMessage())
    assert SECRET_TEXT in str(record.exc_info[1])
