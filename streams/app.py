"""Stream topology: the Faust app factory and its topics. Built inside a function, never at import.

All topics carry raw bytes: values are validated by schemas.validation, so a malformed message
becomes a dead letter instead of being logged and skipped by Faust's deserializer.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

import faust
from faust.auth import OAuthCredentials
from faust.web import Web

from schemas.settings import Settings, SettingsError
from streams.oauth import TokenFile
from streams.transport import Transport

# The largest request the producer sends (Faust's and Kafka's default, stated so that what we
# pack into one message -- agents.fraud_outcome's learn batches -- can stay below it).
MAX_REQUEST_BYTES = 1_000_000


class StreamsenseApp(faust.App):
    """A Faust app whose consumer fetch wait comes from settings (see streams.transport), and whose
    web server the worker may supply (``web_driver``: app -> faust Web; set before any page is added)."""

    fetch_max_wait_ms: int = 1500
    web_driver: Callable[[faust.App], Web] | None = None

    def _new_transport(self):
        return Transport(self.conf.broker_consumer, self)

    def _new_web(self) -> Web:
        return self.web_driver(self) if self.web_driver is not None else super()._new_web()


@dataclass(frozen=True)
class Topology:
    app: faust.App
    transactions: faust.TopicT
    fraud_labels: faust.TopicT
    fraud_decisions: faust.TopicT
    dead_letters: faust.TopicT
    interactions: faust.TopicT
    reco_requests: faust.TopicT
    recommendations: faust.TopicT
    learn: faust.TopicT  # internal, one partition: its owner is the one fraud learner


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The broker is verified against ``ssl_cafile`` (or the system's CAs); with ``ssl_certfile`` the
    client shows its own certificate (mTLS)."""
    context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
    if settings.ssl_certfile:
        try:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None,
                                    settings.ssl_key_password.get_secret_value() or None)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"ssl_certfile / ssl_keyfile: cannot load the client certificate: {exc}") from None
    return context


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """SASL/SSL credentials from settings; SASL over plain text only when explicitly allowed."""
    protocol = settings.security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    context = tls_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if protocol in {"SASL_SSL", "SASL_PLAINTEXT"}:
        if protocol == "SASL_PLAINTEXT" and not settings.allow_plaintext_sasl:
            raise SettingsError("SASL_PLAINTEXT refused: set allow_plaintext_sasl to send credentials in clear")
        if settings.sasl_mechanism.upper() == "OAUTHBEARER":
            return OAuthCredentials(oauth_cb=TokenFile(settings.sasl_oauth_token_file),
                                    ssl_context=context if protocol == "SASL_SSL" else None)
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            mechanism=settings.sasl_mechanism,
            ssl_context=context if protocol == "SASL_SSL" else None,
        )
    raise SettingsError(f"unknown security_protocol {settings.security_protocol!r}")


def kafka_client_options(settings: Settings) -> dict:
    """Keyword arguments for an aiokafka producer, consumer or admin client outside the Faust app
    (topic creation, the simulator, produce, tail, models): the same servers and credentials.

    >>> kafka_client_options(Settings(bootstrap_servers="k:9092"))
    {'bootstrap_servers': 'k:9092'}
    >>> from schemas.settings import SecretStr
    >>> opts = kafka_client_options(Settings(security_protocol="SASL_SSL", sasl_username="u",
    ...                                      sasl_password=SecretStr("p")))
    >>> opts["security_protocol"], opts["sasl_mechanism"], opts["sasl_plain_username"], opts["ssl_context"] is not None
    ('SASL_SSL', 'SCRAM-SHA-512', 'u', True)
    """
    options: dict = {"bootstrap_servers": settings.bootstrap_servers}
    creds = broker_credentials(settings)
    if isinstance(creds, OAuthCredentials):
        options.update(security_protocol=creds.protocol.value, sasl_mechanism="OAUTHBEARER",
                       sasl_oauth_token_provider=creds.oauth_cb, ssl_context=creds.ssl_context)
    elif isinstance(creds, faust.SASLCredentials):
        options.update(security_protocol=creds.protocol.value, sasl_mechanism=creds.mechanism.value,
                       sasl_plain_username=creds.username, sasl_plain_password=creds.password,
                       ssl_context=creds.ssl_context)
    elif isinstance(creds, faust.SSLCredentials):
        options.update(security_protocol="SSL", ssl_context=creds.context)
    return options


def make_app(settings: Settings, **overrides: object) -> Topology:
    """Create the Faust app and declare its topics."""
    brokers = ";".join(f"kafka://{hp.strip()}" for hp in settings.bootstrap_servers.split(","))
    options = dict(
        # Faust reads unprefixed variables (WEB_PORT, BROKER_URL, NODE_CANONICAL_URL, ...) over the
        # values passed here; an empty environment makes these settings the only source.
        env={},
        broker=brokers,
        broker_credentials=broker_credentials(settings),
        store="memory://",
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        web_bind=settings.web_bind,  # the address it listens on: Faust binds 0.0.0.0 unless told
        web_port=settings.web_port,
        # What the other workers reach this one at: Faust keys the group's host map by it, which is
        # how a worker finds the owner of a user's partition (agents.api.routing).
        canonical_url=settings.web_url,
        web_enabled=True,
        # Faust's own pages would be served on the API port without a key: /router names every
        # worker and key owner, /table reads table contents, /graph and / describe internals.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        topic_replication_factor=settings.replication_factor,  # the internal learn and leader topics
        producer_compression_type=None if settings.compression_type == "none" else settings.compression_type,
        producer_acks=-1,
        producer_max_request_size=MAX_REQUEST_BYTES,
    )
    app = StreamsenseApp(settings.app_id, **{**options, **overrides})
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    t = settings.topics

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)

    return Topology(
        app=app,
        transactions=raw_topic(t.transactions),
        fraud_labels=raw_topic(t.fraud_labels),
        fraud_decisions=raw_topic(t.fraud_decisions),
        dead_letters=raw_topic(t.dead_letters),
        interactions=raw_topic(t.interactions),
        reco_requests=raw_topic(t.reco_requests),
        recommendations=raw_topic(t.recommendations),
        learn=app.topic(settings.learn_topic, key_serializer="raw", value_serializer="raw", partitions=1,
                        internal=True),
    )
