"""Contracts of streamsense: records, JSON Schemas, topic names, settings and validation of raw bytes.

Pure: no Faust app, no Redis, no network.
"""
