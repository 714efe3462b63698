"""The HTTP API's OpenAPI 3.1 document, built from the same JSON Schema files as the topics'
contracts (OpenAPI 3.1 schemas are JSON Schema 2020-12, so they are used as they are)."""

from __future__ import annotations

from functools import cache

from schemas.contracts import load_schema

ERROR = {
    "type": "object", "required": ["error", "message", "field", "request_id"],
    "properties": {"error": {"type": "string", "description": "a stable code: unauthenticated, forbidden, "
                                                              "forward_refused, body_timeout, too_large, "
                                                              "out_of_range, rate_limited, not_ready, overloaded, "
                                                              "too_many_connections, unavailable, scoring_failed, "
                                                              "internal, or the validation code"},
                   "message": {"type": "string", "description": "for people; never internal text (the worker's "
                                                                "log has the detail under request_id)"},
                   "field": {"type": ["string", "null"]},
                   "request_id": {"type": "string", "description": "names the worker's log lines for this request"}},
}
HEADERS = {
    "X-Request-Id": {"description": "the request_id of the body", "schema": {"type": "string"}},
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1}},
}


def _errors(*statuses: int) -> dict:
    text = {401: "no or unknown API key", 403: "the key lacks the scope, or a forwarding mark is refused",
            408: "the body did not arrive within api_body_timeout_s", 413: "body over the size cap",
            422: "the body or a parameter fails validation (numbers are bounded); `field` names it",
            429: "rate limit; see Retry-After",
            500: "feature or model code failed, or a bug; the log has the detail under request_id",
            503: "not ready (no partitions assigned yet), overloaded (api_max_pending requests in progress, or "
                 "api_max_connections open connections), or Redis / the broker failing; retry after Retry-After"}
    retry = {429, 503}
    return {str(s): {"description": text[s],
                     "headers": {h: HEADERS[h] for h in ("X-Request-Id", "Retry-After")
                                 if h != "Retry-After" or s in retry},
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for s in statuses}


@cache
def openapi_document() -> dict:
    def secured(scope: str) -> list:
        return [{"apiKey": [scope]}]

    return {
        "openapi": "3.1.0",
        "info": {"title": "streamsense", "version": "1",
                 "description": "Synchronous scoring and recommendations, served by the stream workers "
                                "with the same feature and model code. A request for a user another worker "
                                "owns is forwarded to that worker, once. Every refusal is an Error with a "
                                "request_id (also in X-Request-Id)."},
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "an API key; scopes: score, recommend, admin"}},
            "schemas": {"Transaction": load_schema("transaction.schema.json"),
                        "FraudDecision": load_schema("fraud_decision.schema.json"),
                        "Recommendation": load_schema("recommendation.schema.json"),
                        "Error": ERROR},
        },
        "paths": {
            "/v1/score": {"post": {
                "summary": "Score one transaction; its decision is the record published on fraud-decisions",
                "security": secured("score"),
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Transaction"}}}},
                "responses": {"200": {"description": "the decision (the stored one if this event_id was "
                                                     "decided before, over HTTP or Kafka)",
                                      "content": {"application/json": {
                                          "schema": {"$ref": "#/components/schemas/FraudDecision"}}}},
                              **_errors(401, 403, 408, 413, 422, 429, 500, 503)}}},
            "/v1/recommendations/{user_id}": {"get": {
                "summary": "Top-K items for a user from the live model and the Redis lists",
                "security": secured("recommend"),
                "parameters": [
                    {"name": "user_id", "in": "path", "required": True,
                     "schema": {"type": "string", "minLength": 1, "maxLength": 128}},
                    {"name": "k", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 100}}],
                "responses": {"200": {"description": "the recommendation, with the strategy used",
                                      "content": {"application/json": {
                                          "schema": {"$ref": "#/components/schemas/Recommendation"}}}},
                              **_errors(401, 403, 422, 429, 500, 503)}}},
            "/v1/models": {"get": {
                "summary": "The model versions serving now on this worker",
                "security": secured("admin"),
                "responses": {"200": {"description": "per role: model name, version, checkpoint",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                              **_errors(401, 403, 429, 500, 503)}}},
        },
    }
