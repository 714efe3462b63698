"""The HTTP API's OpenAPI 3.1 document, built from the same JSON Schema files as the topics'
contracts (OpenAPI 3.1 schemas are JSON Schema 2020-12, so they are used as they are)."""

from __future__ import annotations

from functools import cache

from schemas.contracts import load_schema

ERROR = {
    "type": "object", "required": ["error", "message", "field"],
    "properties": {"error": {"type": "string", "description": "a stable code: unauthenticated, forbidden, "
                                                              "rate_limited, too_large, or the validation code"},
                   "message": {"type": "string"}, "field": {"type": ["string", "null"]}},
}


def _errors(*statuses: int) -> dict:
    text = {401: "no or unknown API key", 403: "the key lacks the scope", 413: "body over the size cap",
            422: "the body or a parameter fails validation; `field` names it", 429: "rate limit; see Retry-After",
            503: "not ready (no partitions assigned yet) or Redis commits keep conflicting; retry"}
    return {str(s): {"description": text[s], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
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
                                "owns is forwarded to that worker."},
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
                              **_errors(401, 403, 413, 422, 429, 503)}}},
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
                              **_errors(401, 403, 422, 429, 503)}}},
            "/v1/models": {"get": {
                "summary": "The model versions serving now on this worker",
                "security": secured("admin"),
                "responses": {"200": {"description": "per role: model name, version, checkpoint",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                              **_errors(401, 403, 429)}}},
        },
    }
