"""The HTTP API's OpenAPI 3.1 document, built from the same JSON Schema files as the topics'
contracts (OpenAPI 3.1 schemas are JSON Schema 2020-12). Each file becomes a component: its
``$id`` and ``$schema`` are dropped and its ``#/$defs/...`` references are rewritten to point
inside that component, because a reference is resolved against the document that holds it (with
the ``$id`` left in, validators look for ``/$defs/id`` at the document's root and find nothing).

Every status a route can answer is listed with its headers; 503 with ``too_many_connections`` can
come from any route, since the connection cap answers before routing (agents.api.web_server)."""

from __future__ import annotations

from functools import cache

from schemas.contracts import load_schema
from schemas.validation import MAX_ID_CHARS, MAX_K

ERROR = {
    "type": "object", "required": ["error", "message", "field", "request_id"],
    "properties": {"error": {"type": "string", "description": "a stable code: unauthenticated, forbidden, "
                                                              "forward_refused, body_timeout, conflict, too_large, "
                                                              "out_of_range, rate_limited, not_ready, overloaded, "
                                                              "too_many_connections, unavailable, scoring_failed, "
                                                              "internal, or the validation code"},
                   "message": {"type": "string", "description": "for people; never internal text (the worker's "
                                                                "log has the detail under request_id)"},
                   "field": {"type": ["string", "null"]},
                   "request_id": {"type": "string", "description": "names the worker's log lines for this request"}},
}
READINESS = {
    "type": "object", "required": ["ready", "partitions_assigned", "redis", "models_loaded", "warnings"],
    "properties": {"ready": {"type": "boolean"}, "partitions_assigned": {"type": "boolean"},
                   "redis": {"type": "boolean"}, "models_loaded": {"type": "boolean"},
                   "warnings": {"type": "array", "items": {"type": "string"},
                                "description": "what makes Redis untrustworthy for the decision guard"}},
}
HEADERS = {
    "X-Request-Id": {"description": "the request_id of the body", "schema": {"type": "string"}},
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1}},
    "WWW-Authenticate": {"description": "the scheme to use: Bearer", "schema": {"const": "Bearer"}},
    "X-Streamsense-Served-By": {"description": "the URL of the worker that answered (the user's owner, unless "
                                             "it could not be reached)", "schema": {"type": "string"}},
    "X-Streamsense-Cache": {"description": "hit when answered from the prediction cache",
                            "schema": {"enum": ["hit", "miss"]}},
}
ERROR_TEXT = {
    401: "no or unknown API key", 403: "the key lacks the scope, or a forwarding mark is refused",
    408: "the body did not arrive within api_body_timeout_s",
    409: "this event_id was decided for a different payload or submitted by another client (never answered "
         "with that decision)",
    413: "body over the size cap",
    422: "the body or a parameter fails validation (numbers are bounded); `field` names it",
    429: "rate limit; see Retry-After",
    500: "feature or model code failed, or a bug; the log has the detail under request_id",
    503: "not ready (no partitions assigned yet), overloaded (api_max_pending requests in progress, or "
         "api_max_connections open connections), or Redis / the broker failing; retry after Retry-After",
}
ERROR_HEADERS = {401: ("X-Request-Id", "WWW-Authenticate"), 429: ("X-Request-Id", "Retry-After"),
                 503: ("X-Request-Id", "Retry-After")}
BUSY = 503  # the connection cap's answer, possible on every route


def headers(*names: str) -> dict:
    return {h: HEADERS[h] for h in names}


def json_body(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def errors(*statuses: int) -> dict:
    return {str(s): {"description": ERROR_TEXT[s], "headers": headers(*ERROR_HEADERS.get(s, ("X-Request-Id",))),
                     "content": json_body(ref("Error"))}
            for s in statuses}


def component(schema_file: str, name: str) -> dict:
    """A contract's JSON Schema as a component of this document (see the module's docstring)."""
    def rewrite(node):
        if isinstance(node, dict):
            return {k: (f"#/components/schemas/{name}/$defs/{v.removeprefix('#/$defs/')}"
                        if k == "$ref" and v.startswith("#/$defs/") else rewrite(v))
                    for k, v in node.items() if k not in ("$id", "$schema")}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    return rewrite(load_schema(schema_file))


def operation(operation_id: str, summary: str, responses: dict, scope: str | None = None, **more) -> dict:
    return {"operationId": operation_id, "summary": summary,
            "security": [{"apiKey": [scope]}] if scope else [], **more,
            "responses": {**errors(BUSY), **responses}}  # a route's own 503 says more


@cache
def openapi_document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "streamsense", "version": "1",
                 "description": "Synchronous scoring and recommendations, served by the stream workers "
                                "with the same feature and model code. A request for a user another worker "
                                "owns is forwarded to that worker, once. Every refusal is an Error with a "
                                "request_id (also in X-Request-Id). /health, /ready and /metrics are the "
                                "worker's probes and Prometheus endpoint."},
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "an API key; scopes: score, recommend, admin"}},
            "schemas": {"Transaction": component("transaction.schema.json", "Transaction"),
                        "FraudDecision": component("fraud_decision.schema.json", "FraudDecision"),
                        "Recommendation": component("recommendation.schema.json", "Recommendation"),
                        "Readiness": READINESS, "Error": ERROR},
        },
        "paths": {
            "/v1/score": {"post": operation(
                "scoreTransaction", "Score one transaction; its decision is the record published on fraud-decisions",
                {"200": {"description": "the decision (the stored one if this event_id was decided before, over "
                                        "HTTP or Kafka, for the same payload and client)",
                         "headers": headers("X-Streamsense-Served-By"), "content": json_body(ref("FraudDecision"))},
                 **errors(401, 403, 408, 409, 413, 422, 429, 500)},
                scope="score", requestBody={"required": True, "content": json_body(ref("Transaction"))})},
            "/v1/recommendations/{user_id}": {"get": operation(
                "recommendForUser", "Top-K items for a user from the live model and the Redis lists",
                {"200": {"description": "the recommendation, with the strategy used",
                         "headers": headers("X-Streamsense-Served-By", "X-Streamsense-Cache"),
                         "content": json_body(ref("Recommendation"))},
                 **errors(401, 403, 422, 429, 500)},
                scope="recommend", parameters=[
                    {"name": "user_id", "in": "path", "required": True,
                     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}},
                    {"name": "k", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K}}])},
            "/v1/models": {"get": operation(
                "listModels", "The model versions serving now on this worker",
                {"200": {"description": "per role: model name, version, checkpoint",
                         "content": json_body({"type": "object"})},
                 **errors(401, 403, 429, 500)},
                scope="admin")},
            "/v1/openapi.json": {"get": operation(
                "getOpenApi", "This document", {"200": {"description": "the OpenAPI document",
                                                        "content": json_body({"type": "object"})}})},
            "/health": {"get": operation(
                "health", "The process answers (the liveness probe)",
                {"200": {"description": "always, while the event loop runs",
                         "content": json_body({"type": "object", "required": ["status"],
                                               "properties": {"status": {"const": "ok"}}})}})},
            "/ready": {"get": operation(
                "ready", "Partitions assigned and not rebalancing, Redis answers, models loaded (the readiness probe)",
                {"200": {"description": "ready", "content": json_body(ref("Readiness"))},
                 "503": {"description": "not ready: the checks that fail are false; or the connection cap "
                                        "(an Error with too_many_connections)",
                         "headers": headers("Retry-After"),
                         "content": json_body({"oneOf": [ref("Readiness"), ref("Error")]})}})},
            "/metrics": {"get": operation(
                "metrics", "Prometheus metrics in the text exposition format",
                {"200": {"description": "the metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}})},
        },
    }
