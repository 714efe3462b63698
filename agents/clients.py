"""Every Kafka and Redis client streamsense opens, built here from ``Settings``.

One place applies the broker's security (``streams.app.kafka_client_options``: the credentials
the Faust app uses, as aiokafka keywords) and one set of timeouts, so an operator command reaches
the same secured Kafka and Redis as the worker. Callers pass only what their job needs (acks,
linger, offsets); a caller's option never drops the security settings.
"""

from __future__ import annotations

import logging

import redis
import redis.asyncio
import redis.asyncio.cluster
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from redis.exceptions import RedisError

from schemas.settings import Settings
from streams.app import kafka_client_options

log = logging.getLogger(__name__)

# aiokafka's default (40 s) is longer than an operator waits for a command; the worker's Faust
# clients keep Faust's own timeouts.
KAFKA_REQUEST_TIMEOUT_MS = 30_000
# A Redis call that takes longer than this is a failure: the worker's circuit breaker then serves
# degraded decisions instead of waiting (agents.breaker).
REDIS_TIMEOUT_S = 2.0
REDIS_HEALTH_CHECK_INTERVAL_S = 10


def kafka_options(settings: Settings) -> dict:
    """Bootstrap servers, security and timeout shared by every aiokafka client."""
    return {**kafka_client_options(settings), "request_timeout_ms": KAFKA_REQUEST_TIMEOUT_MS}


def producer(settings: Settings, **options: object) -> AIOKafkaProducer:
    """Writes batches compressed as ``compression_type`` says (every codec is read either way)."""
    compression = None if settings.compression_type == "none" else settings.compression_type
    return AIOKafkaProducer(**{"compression_type": compression, **options, **kafka_options(settings)})


def consumer(settings: Settings, *topics: str, **options: object) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **{**options, **kafka_options(settings)})


def admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**kafka_options(settings))


def redis_options() -> dict:
    return {"socket_timeout": REDIS_TIMEOUT_S, "socket_connect_timeout": REDIS_TIMEOUT_S,
            "health_check_interval": REDIS_HEALTH_CHECK_INTERVAL_S}


def redis_is_cluster(settings: Settings) -> bool:
    """Whether ``redis_url`` names a Redis Cluster node: the ``redis_cluster`` setting, or (auto)
    the server's own ``cluster_enabled``. A server that does not answer is taken for a single node."""
    if settings.redis_cluster != "auto":
        return settings.redis_cluster == "yes"
    try:
        with redis.Redis.from_url(settings.redis_url.get_secret_value(), **redis_options()) as probe:
            return bool(probe.info("cluster").get("cluster_enabled"))
    except (RedisError, OSError) as exc:
        log.warning("could not ask Redis whether it is a cluster (%s): taking it for a single node; set "
                    "STREAMSENSE_REDIS_CLUSTER=yes to connect to a cluster that is down at start", exc)
        return False


def redis_client(settings: Settings) -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster:
    """An asyncio Redis client, or a cluster client when the URL names a cluster node (any node:
    the client discovers the others); TLS and AUTH come from the URL (``rediss://user:password@host``)."""
    url = settings.redis_url.get_secret_value()
    if redis_is_cluster(settings):
        return redis.asyncio.cluster.RedisCluster.from_url(url, **redis_options())
    return redis.asyncio.Redis.from_url(url, **redis_options())


def sync_redis_client(settings: Settings) -> redis.Redis:
    """A blocking Redis client, for tooling that runs outside an event loop (benchmarks)."""
    return redis.Redis.from_url(settings.redis_url.get_secret_value(), **redis_options())
