"""The HTTP API, served by the worker's own web server with the agents' processors (never a second
implementation of features or models):

- ``POST /v1/score`` (scope score): one transaction; the answer is its decision, the same record
  that goes to fraud-decisions. It is answered once committed to Redis and handed to the producer;
  a decision the broker never acknowledges is published again from Redis (agents.api.batching).
  An event_id sent over HTTP, Kafka or both is decided once: whichever way comes second gets the
  stored decision. Requests that arrive together are decided together.
- ``GET /v1/recommendations/{user_id}?k=N`` (scope recommend): top-K with the strategy used;
  identical requests within ``api_reco_cache_ttl_s`` are answered from a cache while the model
  version is unchanged (``X-Streamsense-Cache: hit``).
- ``GET /v1/models`` (scope admin): the model versions this worker serves.
- ``GET /v1/openapi.json``: the OpenAPI document (no key needed).

Partition ownership: a request is served by the worker that owns the user's partition (of
transactions for scoring: it serialises writes to the user's state; of interactions for
recommendations: its model learned that user). Any worker takes the request and forwards it
there once, with a header only workers can make (an HMAC under the signing key); the answer
names the worker that served it in ``X-Streamsense-Served-By``. If the owner cannot be reached
(it is leaving, mid-rebalance) the request is served where it arrived: state lives in Redis and
the event_id guard still allows one decision per event.

Refusals are JSON ``{"error", "message", "field"}``: 401 no or unknown key, 403 missing scope,
413 body over ``max_event_bytes``, 422 validation (``field`` names the culprit), 429 over the
client's rate on this worker (``Retry-After``), 503 no partition assignment yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import time
import uuid
from typing import Awaitable, Callable

import aiohttp
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from faust.web import Request, Response, View
from redis.exceptions import RedisError
from yarl import URL

from agents.api.auth import ApiError, ApiKeys, RateLimiter
from agents.api.batching import ScoreBatcher
from agents.api.openapi import openapi_document
from agents.batching import send_all
from agents.api.prediction_cache import PredictionCache
from agents.runtime import Runtime
from agents.transaction_path import ScoringFailed
from online_models.engine import MODEL_NAME as FRAUD_MODEL
from online_models.reco_engine import MODEL_NAME as RECO_MODEL
from schemas.errors import InvalidEvent
from schemas.validation import decode_reco_request
from streams.app import Topology

log = logging.getLogger(__name__)

FORWARDED = "X-Streamsense-Forwarded"
SERVED_BY = "X-Streamsense-Served-By"
CACHE = "X-Streamsense-Cache"
PASSED_BACK = (SERVED_BY, CACHE, "Retry-After", "WWW-Authenticate")
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=5.0)

Serve = Callable[[View, Request, bool], Awaitable[Response]]


def invalid(exc: InvalidEvent) -> ApiError:
    return ApiError(422, exc.code, exc.message, exc.field)


async def read_capped(request: Request, cap: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``cap`` bytes (before reading it all)."""
    if request.content_length is not None and request.content_length > cap:
        raise ApiError(413, "too_large", f"body of {request.content_length} bytes; the limit is {cap}")
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > cap:
            raise ApiError(413, "too_large", f"body over the limit of {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class Api:
    def __init__(self, topology: Topology, runtime: Runtime) -> None:
        self.app, self.runtime, self.settings = topology.app, runtime, runtime.settings
        s = self.settings
        self.keys = ApiKeys.parse(s.api_keys)
        self.limiter = RateLimiter(s.api_rate_per_s, s.api_burst)
        self.cache = PredictionCache(s.api_reco_cache_ttl_s)
        self.batcher = ScoreBatcher(lambda *batch: runtime.processor.transactions.on_api_transactions(*batch),
                                    lambda emits: send_all(self.app, emits),
                                    lambda event_ids: runtime.processor.store.mark_published(event_ids))
        self.forward_mark = hmac.new(s.signing_keyring().current, b"streamsense-api-forward",
                                     hashlib.sha256).hexdigest().encode()

    @property
    def me(self) -> str:
        return str(self.app.conf.canonical_url)

    async def call(self, web: View, request: Request, route: str, scope: str, serve: Serve) -> Response:
        """Authenticate, limit, serve; every refusal becomes its JSON answer, never a traceback."""
        started = time.perf_counter()
        try:
            key = self.keys.authorize(request.headers.get("Authorization"), scope)
            forwarded = hmac.compare_digest(request.headers.get(FORWARDED, "").encode(), self.forward_mark)
            if not forwarded:  # counted where the request arrived, not again at the owner
                wait = self.limiter.take(key.client)
                if wait:
                    raise ApiError(429, "rate_limited", f"client {key.client!r} is over "
                                   f"{self.settings.api_rate_per_s:g} requests/s on this worker",
                                   headers={"Retry-After": str(math.ceil(wait))})
            response = await serve(web, request, forwarded)
        except ApiError as exc:
            response = web.json(exc.body(), status=exc.status, headers=exc.headers)
        except Exception:  # noqa: BLE001 - a bug must answer 500, not drop the connection
            log.exception("API %s %s failed", request.method, route)
            response = web.json({"error": "internal", "message": "internal error; see the worker's log",
                                 "field": None}, status=500)
        metrics = self.runtime.metrics
        metrics.api_requests.labels(route, str(response.status)).inc()
        metrics.api_seconds.labels(route).observe(time.perf_counter() - started)
        return response

    # -- where a user's requests are served -----------------------------------------------------
    def owner(self, topic: str, key: bytes) -> str:
        """The URL of the worker that owns ``key``'s partition of ``topic`` (Kafka's default partitioner)."""
        owners = {p: url for url, tps in self.app.assignor.external_topics_metadata().items()
                  for p in tps.get(topic, ())}
        if not owners:
            raise ApiError(503, "not_ready", "this worker has no partition assignment yet; retry",
                           headers={"Retry-After": "1"})
        partitions = sorted(owners)
        return owners[DefaultPartitioner()(key, partitions, partitions)]

    async def forward(self, web: View, request: Request, owner: str, body: bytes | None) -> Response | None:
        """The owner's answer to the same request, or None when it cannot be reached."""
        target = URL(owner).with_path(request.path).with_query(request.query)
        headers = {"Authorization": request.headers.get("Authorization", ""), FORWARDED: self.forward_mark.decode(),
                   "Content-Type": "application/json"}
        try:
            async with self.app.http_client.request(request.method, target, headers=headers, data=body,
                                                    timeout=FORWARD_TIMEOUT) as answer:
                payload = await answer.read()
                passed = {h: answer.headers[h] for h in PASSED_BACK if h in answer.headers}
                return web.bytes(payload, content_type=answer.content_type, status=answer.status, headers=passed)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("owner %s unreachable (%s); serving this %s request here", owner, exc, request.method)
            return None

    async def routed(self, web: View, request: Request, forwarded: bool, topic: str, user_id: str,
                     body: bytes | None) -> Response | None:
        if forwarded:
            return None
        owner = self.owner(topic, user_id.encode())
        return None if owner == self.me else await self.forward(web, request, owner, body)

    def _ready(self) -> Runtime:
        if self.runtime.processor is None or self.runtime.reco is None:
            raise ApiError(503, "not_ready", "the worker is starting", headers={"Retry-After": "1"})
        return self.runtime

    # -- endpoints ------------------------------------------------------------------------------
    async def score(self, web: View, request: Request, forwarded: bool) -> Response:
        processor = self._ready().processor.transactions
        started = time.time()
        body = await read_capped(request, self.settings.max_event_bytes)
        try:
            tx = processor.decode(body, started)
        except InvalidEvent as exc:
            raise invalid(exc) from None
        routed = await self.routed(web, request, forwarded, self.settings.topics.transactions, tx.user_id, body)
        if routed is not None:
            return routed
        try:
            decision = await self.batcher.submit(body, tx, started)
        except ScoringFailed as exc:
            raise ApiError(500, "scoring_failed", f"feature or model code failed for this event: {exc}") from None
        except (RuntimeError, RedisError, KafkaError) as exc:
            raise ApiError(503, "unavailable", f"could not commit or publish the decision: {exc}",
                           headers={"Retry-After": "1"}) from None
        return web.bytes(decision, content_type="application/json", headers={SERVED_BY: self.me})

    async def recommendations(self, web: View, request: Request, forwarded: bool, user_id: str) -> Response:
        runtime = self._ready()
        k = request.query.get("k", str(self.settings.reco_default_k))
        if not k.isascii() or not k.isdigit():
            raise ApiError(422, "wrong_type", f"k must be a positive integer, got {k[:20]!r}", "k")
        raw = json.dumps({"request_id": f"api-{uuid.uuid4().hex}", "user_id": user_id, "k": int(k),
                          "ts": time.time()}).encode()
        try:
            reco_request = decode_reco_request(raw, max_bytes=self.settings.max_event_bytes)
        except InvalidEvent as exc:
            raise invalid(exc) from None
        routed = await self.routed(web, request, forwarded, self.settings.topics.interactions, user_id, None)
        if routed is not None:
            return routed
        cache_key = (user_id, reco_request.k)
        cached = self.cache.get(cache_key, runtime.reco.engine.model_version)
        if cached is not None:
            return web.bytes(cached, content_type="application/json", headers={SERVED_BY: self.me, CACHE: "hit"})
        answer = await runtime.reco.recommend_now(reco_request)
        body = answer.to_json()
        self.cache.put(cache_key, answer.model_version, body)
        return web.bytes(body, content_type="application/json", headers={SERVED_BY: self.me, CACHE: "miss"})

    async def models(self, web: View, request: Request, forwarded: bool) -> Response:
        runtime = self._ready()
        champion = runtime.engine.lifecycle
        return web.json({
            "worker": self.me,
            "fraud": {"model": FRAUD_MODEL, "version": runtime.engine.model_version,
                      "checkpoint": runtime.lifecycle.serving_version if runtime.lifecycle else None,
                      "champion": champion.champion.name,
                      "challenger": champion.challenger.name if champion.challenger else None},
            "recommendations": {"model": RECO_MODEL, "version": runtime.reco.engine.model_version},
        })


def register_api(topology: Topology, runtime: Runtime) -> Api:
    api = Api(topology, runtime)
    app = topology.app

    @app.page("/v1/score")
    class Score(View):
        async def post(self, request: Request) -> Response:
            return await api.call(self, request, "/v1/score", "score", api.score)

    @app.page("/v1/recommendations/{user_id}")
    class Recommendations(View):
        async def get(self, request: Request, user_id: str) -> Response:
            return await api.call(self, request, "/v1/recommendations", "recommend",
                                  lambda web, req, forwarded: api.recommendations(web, req, forwarded, user_id))

    @app.page("/v1/models")
    class Models(View):
        async def get(self, request: Request) -> Response:
            return await api.call(self, request, "/v1/models", "admin", api.models)

    @app.page("/v1/openapi.json")
    async def openapi(web: View, request: Request) -> Response:
        return web.json(openapi_document())

    return api
