"""Settings: one object, read from environment variables (``STREAMSENSE_*``) and optionally a TOML file.

Secrets are :class:`SecretStr` and are masked wherever the settings are printed.

>>> s = Settings.from_env({"STREAMSENSE_REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0",
...                        "STREAMSENSE_REVIEW_THRESHOLD": "0.4"})
>>> s.review_threshold
0.4
>>> "hunter2" in repr(s)
False
>>> s.redis_url.get_secret_value()
'redis://:hunter2@127.0.0.1:6379/0'
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

from schemas.keyring import KEY_ID, MIN_KEY_BYTES, KeyRing, Pseudonyms, WeakKey, parse_keyring, weakness
from schemas.settings_reference import ABOUT

log = logging.getLogger(__name__)

ENV_PREFIX = "STREAMSENSE_"
# What Kubernetes sets for every Service in the namespace (one named streamsense: STREAMSENSE_SERVICE_HOST).
KUBERNETES_VARIABLE = re.compile(r"_SERVICE_HOST$|_SERVICE_PORT(_\w+)?$|_PORT(_\d+_(TCP|UDP|SCTP)(_\w+)?)?$")
KUBERNETES_HINT = " (Kubernetes sets it for a Service of that name; enableServiceLinks: false stops that)"
SINGLE_SIGNING_KEY_ID = "k0"


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


class SecretStr:
    """A string that never shows itself in ``repr`` or ``str``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "SecretStr('**********')" if self._value else "SecretStr('')"

    __str__ = __repr__


@dataclass(frozen=True)
class Topics:
    """Topic names (defaults: the names the project was specified with); every name is configurable."""

    transactions: str = "transactions"
    fraud_labels: str = "fraud-labels"
    fraud_decisions: str = "fraud-decisions"
    dead_letters: str = "dead-letters"
    interactions: str = "interactions"
    reco_requests: str = "reco-requests"
    recommendations: str = "recommendations"
    drift_signals: str = "drift-signals"
    model_events: str = "model-events"
    rule_sets: str = "rule-sets"  # compacted, key "fraud": the rule set every worker follows
    review_cases: str = "review-cases"  # key event_id: one case per review decision


@dataclass(frozen=True)
class Settings:
    # Kafka
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_SSL | SASL_PLAINTEXT
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: SecretStr = field(default_factory=lambda: SecretStr(""))
    ssl_cafile: str = ""
    # mTLS: the client certificate (PEM) and its key, for clusters that authenticate clients by
    # certificate (security_protocol SSL, or SASL_SSL beside SASL).
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_key_password: SecretStr = field(default_factory=lambda: SecretStr(""))
    # SASL OAUTHBEARER: the token is read from this file on every (re)authentication, so the platform
    # that refreshes it (a Kubernetes projected token, an identity sidecar) keeps the worker signed in.
    sasl_oauth_token_file: str = ""
    allow_plaintext_sasl: bool = False
    # Consumer group: how long a silent member keeps its partitions, how often it says it is alive,
    # how long a rebalance waits for members to rejoin.
    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 1.0
    rebalance_timeout_s: float = 10.0
    # Topics this project creates (streamsense topics create, Faust's internal learn and leader
    # topics): clusters with min.insync.replicas > 1 refuse 1.
    replication_factor: int = 1
    compression_type: str = "none"  # what producers write: none | gzip | snappy | lz4 | zstd (all are read)
    # Versioned: a feature change bumps it and starts fresh state everywhere -- the consumer group,
    # the learn topic and every Redis key (redis_key_prefix), checkpoints included.
    app_id: str = "streamsense-v1"
    partitions: int = 4
    topics: Topics = field(default_factory=Topics)
    # Redis (the URL may carry a password, so it is a secret)
    redis_url: SecretStr = field(default_factory=lambda: SecretStr("redis://127.0.0.1:6379/0"))
    # Redis Cluster: "auto" asks the server at start (INFO cluster); "yes" / "no" force it (a worker
    # that starts while Redis is down and is told "auto" assumes a single node).
    redis_cluster: str = "auto"
    # Secrets for pseudonymising ids and signing checkpoints (schemas.keyring). The defaults are
    # public: check_secrets refuses them, and any key under 32 bytes, outside development.
    pseudonym_key: SecretStr = field(default_factory=lambda: SecretStr("dev-only-pseudonym-key"))
    pseudonym_key_id: str = "p0"  # starts every pseudonym: state under a retired key is recognisable
    signing_key: SecretStr = field(default_factory=lambda: SecretStr("dev-only-signing-key"))
    # kid:secret,kid:secret, newest first: the newest signs, every one verifies (rotation). When
    # set, it replaces signing_key (which is the one-key ring with id k0).
    signing_keys: SecretStr = field(default_factory=lambda: SecretStr(""))
    # Development only (streamsense dev and the tests set it): public or short keys are accepted.
    dev_mode: bool = False
    # Decisions
    review_threshold: float = 0.5
    decline_threshold: float = 0.85
    # Rules (online_models.rule_watch): a rule whose hit rate over the last rules_watch_window
    # decisions (judged after rules_watch_min_seen) far exceeds its backtest's is switched to shadow.
    rules_watch_window: int = 1000
    rules_watch_min_seen: int = 200
    # Event time
    allowed_lateness_s: float = 300.0
    # On every input topic, in both formats: events further ahead of / behind the wall clock are
    # dead letters (an event dated 9999 must not lead "recent" popularity forever).
    max_future_s: float = 3600.0
    max_past_s: float = 30 * 86400.0
    # Delayed labels
    label_horizon_s: float = 2 * 86400.0  # unlabelled after this much event time -> legitimate
    snapshot_ttl_s: int = 7 * 86400
    # The decision guard (event_id -> stored decision) must outlive every way the event can come
    # again: a copy accepted anywhere in the acceptance window, or a redelivery/replay of the input,
    # which can trail the first decision by up to the input topics' retention (Kafka: 7 days).
    max_replay_s: float = 7 * 86400.0
    decision_ttl_s: int = 38 * 86400  # >= max_past_s + max_future_s + max_replay_s (check refuses less)
    state_ttl_s: int = 30 * 86400
    # Input limits
    max_event_bytes: int = 64 * 1024
    dead_letter_raw_bytes: int = 4096
    # Forward compatibility: by default an unknown field is ignored and counted, and an unknown
    # channel or interaction kind is decided with a reason naming it; strict dead-letters both.
    strict_input: bool = False
    # Worker
    batch_size: int = 500
    batch_within_s: float = 0.02
    # Longest a consumer fetch may wait for data; brokers that hold a fetch for the full wait (Tansu)
    # add it to every decision's latency. Kafka answers early, so a low value only costs idle polls.
    fetch_max_wait_ms: int = 50
    # A batch whose Redis read plus write take longer than this counts as a Redis failure for the
    # circuit breaker: a slow Redis opens it like a dead one, so decisions stop waiting on it.
    redis_slow_call_s: float = 0.25
    # The worker's event loop: uvloop cut the fraud path's CPU per event by about 15 % (BENCHMARKS.md).
    event_loop: str = "uvloop"  # or "asyncio"
    log_format: str = "text"  # "json": one JSON object per line
    checkpoint_interval_s: float = 10.0  # models are checkpointed this often when they have learned
    # Recommendations
    reco_default_k: int = 10
    reco_min_history: int = 3  # fewer interactions than this: the popular list answers
    reco_explore_share: float = 0.05  # share of answers that explore (logged as strategy "explore")
    reco_trending_half_life_s: float = 6 * 3600.0
    reco_list_ttl_s: int = 3600
    # A user's cached list is re-ranked at most this often (ranking is the path's biggest cost per
    # interaction); 0 re-ranks on every interaction.
    reco_list_refresh_s: float = 5.0
    # The worker's HTTP server: the address it listens on, and the URL the other workers reach it at
    # (forwarded API requests; Faust's host map keys every worker by it, so it must be unique per
    # worker). In a container the server listens on 0.0.0.0 and each worker advertises its own name
    # (http://worker-1:6066); empty means the bind address's URL, refused for a wildcard bind.
    web_bind: str = "127.0.0.1"
    web_port: int = 6066
    advertised_url: str = ""
    # HTTP API (agents.api.server): keys as client:scope+scope:sha256hex, comma-separated (streamsense
    # api-key makes one); none configured means every API call is refused with 401.
    api_keys: str = ""
    api_rate_per_s: float = 100.0  # per client, per worker
    api_burst: int = 200
    api_reco_cache_ttl_s: float = 5.0  # an identical recommendation request within this is served cached
    # An HTTP decision the broker has not acknowledged this long after its commit is published again
    # (the worker died after answering); also how often workers look for such decisions.
    api_publish_grace_s: float = 5.0
    # HTTP limits (agents.api.web_server): a client has api_header_timeout_s to send a request's
    # headers (an idle keep-alive connection is closed after it too) and api_body_timeout_s to send
    # its body; beyond api_max_connections open connections, or api_max_pending API requests in
    # progress on this worker (reading, queued for a batch, deciding), the answer is 503 + Retry-After.
    api_header_timeout_s: float = 10.0
    api_body_timeout_s: float = 10.0
    api_max_connections: int = 1024
    api_max_pending: int = 512
    # A forwarded request's mark (agents.api.forwarding) is good this long, once.
    api_forward_ttl_s: float = 10.0
    data_dir: str = ".streamsense-data"
    seed: int = 42

    @property
    def redis_key_prefix(self) -> str:
        """Every Redis key starts with it. Derived from app_id, not a setting of its own: bumping
        app_id cannot leave state or a model checkpoint of the old version to be read as new.

        >>> Settings(app_id="streamsense-v2").redis_key_prefix
        'ss:streamsense-v2'
        """
        return f"ss:{self.app_id}"

    @property
    def web_url(self) -> str:
        """The URL the other workers reach this one at.

        >>> Settings(web_port=7000).web_url, Settings(advertised_url="http://worker-1:6066").web_url
        ('http://127.0.0.1:7000', 'http://worker-1:6066')
        """
        return self.advertised_url or _http_url(self.web_bind, self.web_port)

    @property
    def local_url(self) -> str:
        """The URL this worker's own host reaches it at (the image's health check): the bind
        address, or loopback when it listens on every address.

        >>> Settings(web_bind="0.0.0.0", advertised_url="http://worker-1:6066").local_url
        'http://127.0.0.1:6066'
        """
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.web_bind, self.web_bind)
        return _http_url(host, self.web_port)

    @property
    def learn_topic(self) -> str:
        """Internal, one partition: labelled snapshots on their way to the one worker that learns."""
        return f"{self.app_id}-learn"

    def signing_keyring(self) -> KeyRing:
        """The checkpoint keys, newest first (``signing_keys``, else ``signing_key`` as id k0)."""
        text = self.signing_keys.get_secret_value()
        if text:
            return parse_keyring("signing_keys", text)
        return KeyRing(((SINGLE_SIGNING_KEY_ID, self.signing_key.get_secret_value().encode()),))

    def pseudonyms(self) -> Pseudonyms:
        return Pseudonyms(self.pseudonym_key_id, self.pseudonym_key.get_secret_value().encode())

    def check_secrets(self) -> None:
        """Refuse public, empty or short keys unless ``dev_mode``: the error names the setting.

        >>> Settings().check_secrets()
        Traceback (most recent call last):
        ...
        schemas.settings.SettingsError: pseudonym_key (STREAMSENSE_PSEUDONYM_KEY) cannot be used: ...
        >>> Settings(dev_mode=True).check_secrets()
        """
        if self.dev_mode:
            return
        named = [("pseudonym_key", self.pseudonym_key.get_secret_value())]
        if self.signing_keys:
            named += [(f"signing_keys[{kid}]", secret.decode()) for kid, secret in self.signing_keyring().keys]
        else:
            named.append(("signing_key", self.signing_key.get_secret_value()))
        for name, secret in named:
            reason = weakness(secret)
            if reason:
                variable = ENV_PREFIX + name.split("[")[0].upper()
                raise SettingsError(f"{name} ({variable}) cannot be used: {reason}; set at least "
                                    f"{MIN_KEY_BYTES} random bytes (or {ENV_PREFIX}DEV_MODE=true for development only)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 warn: Callable[[str], None] = log.warning) -> Settings:
        """Build settings from ``STREAMSENSE_*`` variables, on top of ``STREAMSENSE_CONFIG`` (a TOML file).

        A secret may come from a file instead (a container secret, never on a command line or in
        the environment): ``STREAMSENSE_<NAME>_FILE=/run/secrets/...``; one trailing newline is dropped.
        A variable that names no setting is ``warn``-ed about and ignored, not fatal: platforms add
        their own (Kubernetes sets ``STREAMSENSE_SERVICE_HOST`` for a Service named streamsense).
        A retired setting is still refused, so it cannot silently stop working.

        >>> Settings.from_env({"STREAMSENSE_SERVICE_HOST": "10.0.0.1", "STREAMSENSE_PARTITIONS": "8"},
        ...                   warn=print).partitions
        ignoring STREAMSENSE_SERVICE_HOST: no such setting (Kubernetes sets it for a Service of that name; ...)
        8
        """
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        path = environ.get(ENV_PREFIX + "CONFIG")
        if path:
            with open(path, "rb") as fh:
                values.update(tomllib.load(fh))
        topic_names = {f.name for f in fields(Topics)}
        known = {f.name for f in fields(cls)} | set(RETIRED)
        for key, raw in sorted(environ.items()):
            if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
                continue
            name = key[len(ENV_PREFIX):].lower()
            if name.endswith("_file") and name[:-5] in known:
                if name[:-5] not in SECRET_NAMES:
                    raise SettingsError(f"{key}: only secrets come from files; set {ENV_PREFIX}{name[:-5].upper()}")
                if ENV_PREFIX + name[:-5].upper() in environ:
                    raise SettingsError(f"{name[:-5]}: set {key} or {ENV_PREFIX}{name[:-5].upper()}, not both")
                name, raw = name[:-5], _read_secret_file(name[:-5], raw)
            if name.startswith("topic_") and name[6:] in topic_names:
                values.setdefault("topics", {})[name[6:]] = raw  # type: ignore[index]
            elif name in known:
                values[name] = raw
            else:
                hint = KUBERNETES_HINT if KUBERNETES_VARIABLE.search(key) else ""
                warn(f"ignoring {key}: no such setting{hint}")
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Settings:
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, object] = {}
        for name, raw in values.items():
            if name in RETIRED:
                raise SettingsError(f"{name} ({ENV_PREFIX}{name.upper()}) is no longer a setting: {RETIRED[name]}")
            if name not in known:
                raise SettingsError(f"unknown setting {name!r}")
            kwargs[name] = _coerce(name, known[name], raw)
        settings = cls(**kwargs)
        settings.check()
        return settings

    def to_env(self) -> dict[str, str]:
        """The environment that recreates these settings in a child process (secrets included).

        >>> Settings.from_env(Settings(partitions=8).to_env()).partitions
        8
        """
        env: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Topics):
                for t in fields(Topics):
                    env[f"{ENV_PREFIX}TOPIC_{t.name.upper()}"] = getattr(value, t.name)
            elif isinstance(value, SecretStr):
                env[ENV_PREFIX + f.name.upper()] = value.get_secret_value()
            else:
                env[ENV_PREFIX + f.name.upper()] = str(value)
        return env

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)

    def check(self) -> None:
        self._check_bounds()
        if not 0.0 <= self.review_threshold <= self.decline_threshold <= 1.0:
            raise SettingsError("need 0 <= review_threshold <= decline_threshold <= 1")
        if self.security_protocol == "SASL_PLAINTEXT" and not self.allow_plaintext_sasl:
            raise SettingsError(
                "SASL_PLAINTEXT sends credentials in clear text; use SASL_SSL "
                "or set STREAMSENSE_ALLOW_PLAINTEXT_SASL=true explicitly"
            )
        self._check_kafka()
        if self.redis_cluster not in ("auto", "yes", "no"):
            raise SettingsError("redis_cluster must be auto, yes or no")
        self._check_windows()
        self._check_web()
        if self.event_loop not in ("asyncio", "uvloop"):
            raise SettingsError(f"event_loop must be asyncio or uvloop, not {self.event_loop!r}")
        if not KEY_ID.fullmatch(self.pseudonym_key_id):
            raise SettingsError("pseudonym_key_id: use 1-32 of [A-Za-z0-9_.-]")
        try:
            self.signing_keyring()
        except WeakKey as exc:
            raise SettingsError(str(exc)) from exc

    def _check_bounds(self) -> None:
        """Every number within the range schemas.settings_reference gives it (NaN is in no range).

        >>> Settings(api_rate_per_s=0.0).check()
        Traceback (most recent call last):
        ...
        schemas.settings.SettingsError: api_rate_per_s (STREAMSENSE_API_RATE_PER_S) is 0: use more than 0
        """
        for name, about in ABOUT.items():
            value = getattr(self, name)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and about.bounds() and not about.fits(value):
                raise SettingsError(f"{name} ({ENV_PREFIX}{name.upper()}) is {value:g}: use {about.bounds()}")

    def _check_kafka(self) -> None:
        """Kafka settings that cannot work together.

        >>> Settings(session_timeout_s=2.0).check()
        Traceback (most recent call last):
        ...
        schemas.settings.SettingsError: heartbeat_interval_s (1 s) must be at most a third of ...
        """
        if self.heartbeat_interval_s * 3 > self.session_timeout_s:
            raise SettingsError(f"heartbeat_interval_s ({self.heartbeat_interval_s:g} s) must be at most a third of "
                                f"session_timeout_s ({self.session_timeout_s:g} s): a member would be dropped "
                                "between two heartbeats")
        if self.compression_type not in COMPRESSION_TYPES:
            raise SettingsError(f"compression_type must be one of {', '.join(COMPRESSION_TYPES)}")
        protocol, mechanism = self.security_protocol.upper(), self.sasl_mechanism.upper()
        if mechanism == "OAUTHBEARER" and protocol.startswith("SASL") and not self.sasl_oauth_token_file:
            raise SettingsError("sasl_mechanism OAUTHBEARER needs sasl_oauth_token_file (STREAMSENSE_SASL_OAUTH_"
                                "TOKEN_FILE): the file the platform keeps the token in")
        if (self.ssl_certfile or self.ssl_keyfile) and protocol not in ("SSL", "SASL_SSL"):
            raise SettingsError("ssl_certfile / ssl_keyfile need security_protocol SSL or SASL_SSL")

    def _check_web(self) -> None:
        """The advertised URL must name this worker: a wildcard or empty host there would make every
        worker advertise the same URL, and each would believe it owns every user.

        >>> Settings(web_bind="0.0.0.0").check()
        Traceback (most recent call last):
        ...
        schemas.settings.SettingsError: web_bind is 0.0.0.0 (every address): set advertised_url ...
        >>> Settings(web_bind="0.0.0.0", advertised_url="http://0.0.0.0:6066").check()
        Traceback (most recent call last):
        ...
        schemas.settings.SettingsError: advertised_url 'http://0.0.0.0:6066': ...
        """
        if self.web_bind in WILDCARD_HOSTS and not self.advertised_url:
            raise SettingsError(
                f"web_bind is {self.web_bind} (every address): set advertised_url "
                f"({ENV_PREFIX}ADVERTISED_URL) to the URL the other workers reach this one at, unique per "
                "worker (e.g. http://worker-1:6066)")
        if self.advertised_url:
            reason = _url_fault(self.advertised_url)
            if reason:
                raise SettingsError(f"advertised_url {self.advertised_url!r}: {reason}")

    def _check_windows(self) -> None:
        """The event-time windows must nest: what is accepted stays guarded, labelled and lateness-bounded."""
        guard_needs = self.max_past_s + self.max_future_s + self.max_replay_s
        if self.decision_ttl_s < guard_needs:
            raise SettingsError(
                f"decision_ttl_s ({self.decision_ttl_s:,} s) must be at least max_past_s + max_future_s + "
                f"max_replay_s ({guard_needs:,.0f} s): a duplicate or a replay accepted after its event_id "
                "guard expired would be decided twice")
        if self.allowed_lateness_s > self.max_past_s:
            raise SettingsError("allowed_lateness_s must not exceed max_past_s")
        if self.label_horizon_s > self.snapshot_ttl_s:
            raise SettingsError("label_horizon_s must not exceed snapshot_ttl_s: a snapshot must outlive its horizon")


# Settings that were and are not: refused with what replaced them, never silently ignored.
RETIRED = {
    "redis_key_prefix": "it is derived from app_id (ss:<app_id>); set app_id instead",
    "web_host": f"set {ENV_PREFIX}WEB_BIND (the address the HTTP server listens on) and, when that is "
                f"0.0.0.0, {ENV_PREFIX}ADVERTISED_URL (the URL the other workers reach this one at)",
}
COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _url_fault(url: str) -> str | None:
    """Why ``url`` cannot be a worker's advertised URL, or None.

    >>> _url_fault("http://worker-1:6066"), _url_fault("worker-1:6066"), _url_fault("http://[::]:6066")
    (None, 'use http://HOST:PORT or https://HOST:PORT', 'the host must name this worker, not every address')
    """
    parsed = urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        return "the port is not a number from 0 to 65535"
    if parsed.scheme not in ("http", "https") or not parsed.netloc or port is None:
        return "use http://HOST:PORT or https://HOST:PORT"
    if (parsed.hostname or "") in WILDCARD_HOSTS:
        return "the host must name this worker, not every address"
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment or parsed.username:
        return "no path, query or credentials: only scheme, host and port"
    return None


SECRET_NAMES = frozenset(f.name for f in fields(Settings) if isinstance(getattr(Settings(), f.name), SecretStr))


def _read_secret_file(name: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read {ENV_PREFIX}{name.upper()}_FILE ({path}): {exc.strerror}") from exc
    return text[:-1] if text.endswith("\n") else text


def _coerce(name: str, f: dataclasses.Field, raw: object) -> object:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    try:
        if isinstance(default, SecretStr):
            return raw if isinstance(raw, SecretStr) else SecretStr(str(raw))
        if isinstance(default, Topics):
            return raw if isinstance(raw, Topics) else Topics(**dict(raw))  # type: ignore[arg-type]
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(raw)
            return text in {"1", "true", "yes"}
        if isinstance(default, int):
            return int(raw)  # type: ignore[arg-type]
        if isinstance(default, float):
            return float(raw)  # type: ignore[arg-type]
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name!r}: cannot use {raw!r}") from exc
