"""The worker's HTTP API: routes, API keys, request batching, OpenAPI, the prediction cache.

Runtime: served by every worker on its web port.
"""
