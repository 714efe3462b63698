"""What each setting means and the range it must lie in: the one place the README's settings table
(schemas.settings_readme) and the bounds check (Settings.check) read.

>>> ABOUT["partitions"].low, ABOUT["api_rate_per_s"].fits(0.0)
(1, False)
"""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86400


@dataclass(frozen=True)
class About:
    meaning: str
    low: float | None = None  # inclusive
    high: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound (a duration that must not be 0)

    def fits(self, value: float) -> bool:
        return ((self.low is None or value >= self.low) and (self.high is None or value <= self.high)
                and (self.above is None or value > self.above))

    def bounds(self) -> str:
        """The range in words, for errors and the README.

        >>> About("", low=1, high=8).bounds(), About("", above=0).bounds(), About("").bounds()
        ('1 to 8', 'more than 0', '')
        """
        if self.above is not None:
            return f"more than {self.above:g}" + (f", at most {self.high:g}" if self.high is not None else "")
        if self.low is not None and self.high is not None:
            return f"{self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"at least {self.low:g}"
        return f"at most {self.high:g}" if self.high is not None else ""


ABOUT: dict[str, About] = {
    # Kafka
    "bootstrap_servers": About("Kafka bootstrap servers, comma separated"),
    "security_protocol": About("`PLAINTEXT`, `SSL`, `SASL_SSL`; `SASL_PLAINTEXT` is refused unless "
                               "`STREAMSENSE_ALLOW_PLAINTEXT_SASL=true`"),
    "sasl_mechanism": About("`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER`"),
    "sasl_username": About("SASL user"),
    "sasl_password": About("SASL password"),
    "ssl_cafile": About("CA bundle for TLS to Kafka (empty: the system's)"),
    "ssl_certfile": About("client certificate (PEM) for mTLS to Kafka (`SSL` or `SASL_SSL`)"),
    "ssl_keyfile": About("its private key (PEM; empty: inside `SSL_CERTFILE`)"),
    "ssl_key_password": About("the private key's password, if it has one"),
    "sasl_oauth_token_file": About("`SASL_MECHANISM=OAUTHBEARER`: the file holding the bearer token, read again at "
                                   "every (re)authentication (a Kubernetes projected token, a sidecar's file)"),
    "session_timeout_s": About("consumer group: a member silent this long loses its partitions", low=1, high=3600),
    "heartbeat_interval_s": About("consumer group: how often a member says it is alive (at most a third of the "
                                  "session timeout)", above=0, high=1200),
    "rebalance_timeout_s": About("consumer group: how long a rebalance waits for members to rejoin", low=1,
                                 high=3600),
    "replication_factor": About("replicas of every topic `streamsense topics create` makes and of Faust's internal "
                                "learn and leader topics (clusters with `min.insync.replicas` > 1 need more than 1)",
                                low=1, high=32),
    "compression_type": About("what producers write: `none`, `gzip`, `snappy`, `lz4`, `zstd` (every one is read)"),
    "allow_plaintext_sasl": About("accept `SASL_PLAINTEXT` (credentials and records unencrypted on the network)"),
    "app_id": About("consumer group and state version: the learn topic (`<app_id>-learn`) and every Redis key "
                    "(`ss:<app_id>:...`, model checkpoints included) derive from it, so bumping it starts fresh "
                    "state and no old model is restored. There is no separate key-prefix setting: "
                    "`STREAMSENSE_REDIS_KEY_PREFIX` is "
                    "refused at start-up (`tests/integration/test_state_version.py`)"),
    "partitions": About("partitions of every topic the worker declares (create the topics with as many as the "
                        "most workers you will run)", low=1, high=10_000),
    "topics": About("topic names, one variable per topic: `STREAMSENSE_TOPIC_TRANSACTIONS`, `_FRAUD_LABELS`, "
                    "`_FRAUD_DECISIONS`, `_DEAD_LETTERS`, `_INTERACTIONS`, `_RECO_REQUESTS`, `_RECOMMENDATIONS`, "
                    "`_DRIFT_SIGNALS`, `_MODEL_EVENTS`, `_RULE_SETS`, `_REVIEW_CASES` (defaults: the names under "
                    "\"Topics and messages\")"),
    # Redis
    "redis_url": About("`rediss://user:password@host/0` for AUTH over TLS"),
    "redis_cluster": About("`auto` asks the server at start; `yes` / `no` force Redis Cluster or a single node"),
    # Keys
    "pseudonym_key": About("HMAC key that replaces user, merchant, device and country ids in everything written "
                           "to Redis (default: a public development key, refused outside `DEV_MODE`)"),
    "pseudonym_key_id": About("starts every pseudonym, so state under a retired key is recognisable "
                              "(rotation: SECURITY.md)"),
    "signing_key": About("HMAC key that signs model checkpoints, key id `k0` (default: a public development key, "
                         "refused outside `DEV_MODE`)"),
    "signing_keys": About("rotation: `kid:secret,kid:secret`, newest first; the newest signs, every one verifies "
                          "(replaces `SIGNING_KEY`)"),
    "dev_mode": About("accept the public development keys and short keys (`streamsense dev` and the tests only)"),
    # Decisions and event time
    "review_threshold": About("score from which a transaction is reviewed", low=0, high=1),
    "decline_threshold": About("score from which a transaction is declined (at least the review threshold)",
                               low=0, high=1),
    "rules_watch_window": About("decisions over which a rule's hit rate is compared with its `expected_rate`; "
                                "one far above it is switched to shadow ([Rules as data](#rules-as-data))", low=1),
    "rules_watch_min_seen": About("decisions a worker sees with a rule set before it judges any rule's hit rate",
                                  low=1),
    "allowed_lateness_s": About("event-time lateness merged into windows", low=0),
    "max_future_s": About("an event time further ahead of the wall clock is a dead letter, on every input topic",
                          low=0),
    "max_past_s": About("an event time further behind the wall clock is a dead letter, on every input topic",
                        above=0),
    "label_horizon_s": About("unlabelled after this much event time counts as legitimate", above=0),
    "snapshot_ttl_s": About("how long a decision's feature snapshot waits for its label", low=60),
    "max_replay_s": About("how long after a decision its input may be redelivered or replayed (the input topics' "
                          "retention)", low=0),
    "decision_ttl_s": About("how long an event_id's decision guards against a second one; the settings check "
                            "refuses less than `max_past_s + max_future_s + max_replay_s`", low=60),
    "state_ttl_s": About("how long an idle user's state is kept", low=60),
    # Input
    "max_event_bytes": About("a larger message is a dead letter (HTTP: 413)", low=256, high=1_000_000),
    "dead_letter_raw_bytes": About("how much of a dead message's bytes the dead letter keeps", low=0,
                                   high=1_000_000),
    "strict_input": About("`true`: an added field, or an unknown `channel` or interaction `kind`, is a dead letter "
                          "(default: ignored and counted, or decided with a reason naming it)"),
    # Worker
    "batch_size": About("messages taken per batch", low=1, high=100_000),
    "batch_within_s": About("longest a batch waits to fill", low=0, high=10),
    "fetch_max_wait_ms": About("longest a consumer fetch waits for data (Tansu holds a fetch this long)", low=0,
                               high=30_000),
    "redis_slow_call_s": About("a batch's Redis read and write taking longer count as a failure for the circuit "
                               "breaker", above=0),
    "event_loop": About("the worker's event loop: `uvloop` or `asyncio`"),
    "log_format": About("`text`, or `json` (one object per line)"),
    "checkpoint_interval_s": About("how often the learner publishes its model when it has learned", above=0),
    # Recommendations
    "reco_default_k": About("list length when a request names none", low=1, high=100),
    "reco_min_history": About("fewer interactions than this: the popular list answers", low=0),
    "reco_explore_share": About("share of answers that explore", low=0, high=1),
    "reco_trending_half_life_s": About("half-life of an interaction's weight in the trending list", above=0),
    "reco_list_ttl_s": About("how long a user's cached top-K list lives in Redis", low=1),
    "reco_list_refresh_s": About("a user's cached list is re-ranked at most this often (0: on every interaction)",
                                 low=0),
    # HTTP
    "web_bind": About("the address the worker's HTTP server listens on (never 0.0.0.0 unless configured)"),
    "web_port": About("the port it listens on", low=1, high=65_535),
    "advertised_url": About("the URL the other workers reach this one at (forwarded API requests), unique per "
                            "worker; empty: `http://<web_bind>:<web_port>`, refused when `WEB_BIND` is 0.0.0.0, and "
                            "a wildcard host is refused"),
    "api_keys": About("`client:scope+scope:sha256hex`, comma separated (from `streamsense api-key`); none: every "
                      "API call is 401"),
    "api_rate_per_s": About("API requests per second per client, per worker", above=0),
    "api_burst": About("API requests a client may send at once above its rate", low=1),
    "api_reco_cache_ttl_s": About("identical recommendation requests answered from a cache while the model version "
                                  "is unchanged", low=0),
    "api_publish_grace_s": About("an HTTP decision the broker has not acknowledged this long after its commit is "
                                 "published again from Redis (also how often workers look)", above=0),
    "api_header_timeout_s": About("time a client has to send a request's headers (an idle keep-alive connection "
                                  "is closed after it too)", above=0),
    "api_body_timeout_s": About("time a client has to send a request's body (then 408)", above=0),
    "api_max_connections": About("open connections per worker; one more is answered 503 with `Retry-After`", low=1),
    "api_max_pending": About("API requests in progress per worker; one more is answered 503 with `Retry-After`",
                             low=1),
    "api_forward_ttl_s": About("how long a forwarded request's mark is good (once)", above=0),
    "data_dir": About("the worker's local files (the degraded-decision journal)"),
    "seed": About("seeds every random choice (negative sampling, explore)"),
}
