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
there once, under a mark only workers can make, good for that one request to that worker for
``api_forward_ttl_s``, once (agents.api.forwarding); the path is rebuilt from the parsed values with
every segment quoted, so no user id can change the route. A forwarded request is never forwarded
again; it counts once against the client's rate, on the worker where it arrived (the owner checks
the client's key and scope again). The answer names the worker that served it in
``X-Streamsense-Served-By``. If the owner cannot be reached (it is leaving, mid-rebalance) the
request is served where it arrived: state lives in Redis and the event_id guard still allows one
decision per event.

Refusals are JSON ``{"error", "message", "field", "request_id"}`` (``X-Request-Id`` too): 401 no or
unknown key, 403 missing scope or a refused forwarding mark, 408 body slower than
``api_body_timeout_s``, 409 an event_id already decided for a different payload (never answered
with that decision), 413 body over ``max_event_bytes``, 422 validation (``field`` names the
culprit), 429 over the client's rate on this worker, 503 (``Retry-After``) not ready, overloaded
(``api_max_pending``) or Redis/the broker failing. Messages never carry internal text: a 5xx's
detail is logged under the request id the body names.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import aiohttp
from aiokafka.errors import KafkaError
from faust.web import Request, Response, View
from redis.exceptions import RedisError
from yarl import URL

from agents.api.auth import ApiError, ApiKeys, RateLimiter
from agents.api.batching import ScoreBatcher
from agents.api.forwarding import ForwardKeys, ForwardRefused
from agents.api.limits import RETRY_AFTER, Pending, bounded_int, read_body
from agents.api.openapi import openapi_document
from agents.api.prediction_cache import PredictionCache
from agents.api.routing import owner_url
from agents.batching import send_all
from agents.runtime import Runtime
from agents.transaction_path import EventConflict, ScoringFailed
from online_models.engine import MODEL_NAME as FRAUD_MODEL
from online_models.reco_engine import MODEL_NAME as RECO_MODEL
from schemas.errors import InvalidEvent
from schemas.validation import MAX_K, RECO_REQUESTS
from streams.app import Topology

log = logging.getLogger(__name__)

FORWARD = "X-Streamsense-Forward"
SERVED_BY = "X-Streamsense-Served-By"
CACHE = "X-Streamsense-Cache"
REQUEST_ID = "X-Request-Id"
PASSED_BACK = (SERVED_BY, CACHE, REQUEST_ID, "Retry-After", "WWW-Authenticate")
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=5.0)

# (web, request, body, forwarded) -> the answer
Serve = Callable[[View, Request, bytes, bool, str], Awaitable[Response]]  # ..., forwarded, client


def invalid(exc: InvalidEvent) -> ApiError:
    return ApiError(422, exc.code, exc.message, exc.field)


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
        self.forwarding = ForwardKeys.from_settings(s)
        self.pending = Pending(s.api_max_pending, runtime.metrics.api_pending.set)

    @property
    def me(self) -> str:
        return str(self.app.conf.canonical_url)

    async def call(self, web: View, request: Request, route: str, scope: str, serve: Serve) -> Response:
        """Authenticate, limit, serve; every refusal becomes its JSON answer, never a traceback."""
        started, request_id = time.perf_counter(), uuid.uuid4().hex[:16]
        try:
            key = self.keys.authorize(request.headers.get("Authorization"), scope)
            mark = request.headers.get(FORWARD)
            if mark is None:  # counted where the request arrived; a forwarded one was counted there
                self.limit(key.client)
            with self.pending.slot():
                body = b""
                if request.method == "POST":
                    body = await read_body(request, self.settings.max_event_bytes, self.settings.api_body_timeout_s)
                if mark is not None:
                    self.check_forwarded(mark, request, body)
                response = await serve(web, request, body, mark is not None, key.client)
        except ApiError as exc:
            if exc.detail:
                log.warning("API %s %s answered %d %s (request %s): %s", request.method, route, exc.status,
                            exc.code, request_id, exc.detail)
            response = web.json(exc.body(request_id), status=exc.status,
                                headers={**exc.headers, REQUEST_ID: request_id})
        except Exception:  # noqa: BLE001 - a bug must answer 500, not drop the connection
            log.exception("API %s %s failed (request %s)", request.method, route, request_id)
            response = web.json(ApiError(500, "internal", "internal error; the worker's log has the detail "
                                         "under this request_id").body(request_id),
                                status=500, headers={REQUEST_ID: request_id})
        metrics = self.runtime.metrics
        metrics.api_requests.labels(route, str(response.status)).inc()
        metrics.api_seconds.labels(route).observe(time.perf_counter() - started)
        return response

    def limit(self, client: str) -> None:
        wait = self.limiter.take(client)
        if wait:
            raise ApiError(429, "rate_limited", f"client {client!r} is over {self.settings.api_rate_per_s:g} "
                           "requests/s on this worker", headers={"Retry-After": str(math.ceil(wait))})

    def check_forwarded(self, mark: str, request: Request, body: bytes) -> None:
        try:
            self.forwarding.verify(mark, self.me, request.method, request.raw_path, body,
                                   request.headers.get("Authorization", ""))
        except ForwardRefused as exc:
            raise ApiError(403, "forward_refused", f"the forwarding mark is refused: {exc}") from None

    # -- where a user's requests are served -----------------------------------------------------
    def owner(self, topic: str, key: bytes) -> str:
        """The URL of the worker that owns ``key``'s partition of ``topic`` (agents.api.routing)."""
        partition = self.app.consumer.key_partition(topic, key)  # over the topic's partitions, not the map's
        owner = None if partition is None else owner_url(self.app.assignor.external_topics_metadata(), topic, partition)
        if owner is None:
            raise ApiError(503, "not_ready", "the owner of this user's partition is not known yet (no assignment, "
                           "or a rebalance in progress); retry", headers=RETRY_AFTER)
        return owner

    async def forward(self, web: View, request: Request, owner: str, path_qs: str, body: bytes) -> Response | None:
        """The owner's answer to the same request, or None when it cannot be reached. ``path_qs`` is
        already encoded: it is sent and signed exactly as it is."""
        authorization = request.headers.get("Authorization", "")
        mark = self.forwarding.sign(owner, request.method, path_qs, body, authorization)
        headers = {"Authorization": authorization, FORWARD: mark, "Content-Type": "application/json"}
        target = URL(owner.rstrip("/") + path_qs, encoded=True)
        try:
            async with self.app.http_client.request(request.method, target, headers=headers, data=body or None,
                                                    timeout=FORWARD_TIMEOUT) as answer:
                payload = await answer.read()
                passed = {h: answer.headers[h] for h in PASSED_BACK if h in answer.headers}
                return web.bytes(payload, content_type=answer.content_type, status=answer.status, headers=passed)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("owner %s unreachable (%s); serving this %s request here", owner, exc, request.method)
            return None

    async def routed(self, web: View, request: Request, forwarded: bool, topic: str, user_id: str,
                     path_qs: str, body: bytes) -> Response | None:
        """The owner's answer, or None when this worker serves: it owns the user, the request was
        forwarded here already (never a second hop), or the owner cannot be reached."""
        if forwarded:
            return None
        owner = self.owner(topic, user_id.encode())
        return None if owner == self.me else await self.forward(web, request, owner, path_qs, body)

    def _ready(self) -> Runtime:
        if not self.runtime.models_loaded.is_set() or self.runtime.reco is None:
            raise ApiError(503, "not_ready", "the worker is starting", headers=RETRY_AFTER)
        return self.runtime

    # -- endpoints ------------------------------------------------------------------------------
    async def score(self, web: View, request: Request, body: bytes, forwarded: bool, client: str) -> Response:
        processor = self._ready().processor.transactions
        started = time.time()
        try:
            tx = processor.decode(body, started)
        except InvalidEvent as exc:
            raise invalid(exc) from None
        routed = await self.routed(web, request, forwarded, self.settings.topics.transactions, tx.user_id,
                                   "/v1/score", body)
        if routed is not None:
            return routed
        try:
            decision = await self.batcher.submit(body, tx, started, client)
        except EventConflict as exc:
            raise ApiError(409, "conflict", "this event_id was already decided for a different payload "
                           "or submitted by another client",
                           "event_id", detail=str(exc)) from None
        except ScoringFailed as exc:
            raise ApiError(500, "scoring_failed", "feature or model code failed for this event",
                           detail=str(exc)) from None
        except (RuntimeError, RedisError, KafkaError) as exc:
            raise ApiError(503, "unavailable", "could not commit or publish the decision; retry",
                           headers=RETRY_AFTER, detail=f"{type(exc).__name__}: {exc}") from None
        return web.bytes(decision, content_type="application/json", headers={SERVED_BY: self.me})

    async def recommendations(self, web: View, request: Request, body: bytes, forwarded: bool,
                              user_id: str) -> Response:
        runtime = self._ready()
        k = bounded_int(request.query.get("k", str(self.settings.reco_default_k)), "k", 1, MAX_K)
        raw = json.dumps({"request_id": f"api-{uuid.uuid4().hex}", "user_id": user_id, "k": k,
                          "ts": time.time()}).encode()
        try:
            reco_request = runtime.reco.intake.decode(RECO_REQUESTS, raw)
        except InvalidEvent as exc:
            raise invalid(exc) from None
        routed = await self.routed(web, request, forwarded, self.settings.topics.interactions, user_id,
                                   f"/v1/recommendations/{quote(user_id, safe='')}?k={k}", b"")
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

    async def models(self, web: View, request: Request, body: bytes, forwarded: bool, client: str) -> Response:
        runtime = self._ready()
        lifecycle = runtime.engine.lifecycle
        return web.json({
            "worker": self.me,
            "fraud": {"model": FRAUD_MODEL, "version": runtime.engine.model_version,
                      "checkpoint": runtime.lifecycle.serving_version if runtime.lifecycle else None,
                      "champion": lifecycle.serving.name,
                      "challenger": lifecycle.shadow.name if lifecycle.shadow else None},
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
            def serve(web, req, body, forwarded, client):
                return api.recommendations(web, req, body, forwarded, user_id)

            return await api.call(self, request, "/v1/recommendations", "recommend", serve)

    @app.page("/v1/models")
    class Models(View):
        async def get(self, request: Request) -> Response:
            return await api.call(self, request, "/v1/models", "admin", api.models)

    @app.page("/v1/openapi.json")
    async def openapi(web: View, request: Request) -> Response:
        return web.json(openapi_document())

    return api
