"""Prometheus metrics of one worker, in its own registry, named by Prometheus conventions, with
the process (memory, CPU, open files), garbage collector and platform collectors beside them.

No label ever carries a user id: labels are topics, partitions, outcomes, stages, strategies,
model names and generations, detectors, dependencies, experiment ids and arms. Series that stop being
true are removed, not left at their last value: a revoked partition's lag, a generation no longer served.
"""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
)
from river import metrics as river_metrics

LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
LABEL_DELAY_BUCKETS = (60, 600, 3600, 6 * 3600, 86400, 2 * 86400, 7 * 86400)
BREAKER_STATES = ("closed", "half_open", "open")


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        for collector in (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR):  # process_*, python_gc_*, python_info
            r.register(collector)
        self.events = Counter("streamsense_events_total", "Input messages by topic and outcome",
                              ["topic", "outcome"], registry=r)
        self.decisions = Counter("streamsense_decisions_total", "Fraud decisions by outcome", ["decision"],
                                 registry=r)
        self.dead_letters = Counter("streamsense_dead_letters_total", "Dead letters by stage", ["stage"], registry=r)
        self.unknown_fields = Counter("streamsense_unknown_fields_total", "Fields an input contract does not "
                                      "define, ignored (lenient input); topic is the contract's name", ["topic"],
                                      registry=r)
        self.unknown_values = Counter("streamsense_unknown_values_total", "Categorical values this version does "
                                      "not know, accepted (lenient input)", ["topic", "field"], registry=r)
        self.processing = Histogram("streamsense_processing_seconds", "Batch start to output, per message",
                                    ["path"], buckets=LATENCY_BUCKETS, registry=r)
        self.end_to_end = Histogram("streamsense_end_to_end_seconds", "Producer timestamp to output",
                                    ["path"], buckets=LATENCY_BUCKETS, registry=r)
        self.recommendations = Counter("streamsense_recommendations_total", "Answers by strategy", ["strategy"],
                                       registry=r)
        self.trending_read = Gauge("streamsense_trending_read_timestamp_seconds", "When the popularity behind "
                                   "the trending list now served was read (its age is how stale fallbacks are)",
                                   registry=r)
        self.labels = Counter("streamsense_labels_learned_total", "Labels learned, by source", ["source"],
                              registry=r)
        self.label_delay = Histogram("streamsense_label_delay_seconds", "Event time from decision to label",
                                     buckets=LABEL_DELAY_BUCKETS, registry=r)
        self.rocauc = Gauge("streamsense_model_rolling_rocauc", "ROCAUC of decision scores over the last 1,000 "
                            "labels", ["model"], registry=r)
        self.checkpoint_serving = Gauge("streamsense_checkpoint_serving", "The checkpoint version this worker "
                                        "serves, per model role (0: none, a fresh model)", ["role"], registry=r)
        self.model_info = Gauge("streamsense_model_info", "1 for the model this worker serves; version is its "
                                "generation (the first number of model_version: a promotion or rollback changes it)",
                                ["model", "version"], registry=r)
        self.examples_learned = Counter("streamsense_model_examples_learned", "Examples the serving model gained "
                                        "(learned here, or held by a newer checkpoint it loaded)", ["model"],
                                        registry=r)
        self.learn_position = Gauge("streamsense_learn_position", "Last learn-topic offset the model holds "
                                    "(what a checkpoint published now would resume after)", ["partition"],
                                    registry=r)
        self.drift = Counter("streamsense_drift_signals_total", "Drift detections", ["target", "detector",
                             "severity"], registry=r)
        self.rule_set = Gauge("streamsense_rule_set", "1 for the rule-set version this worker serves", ["version"],
                              registry=r)
        self.rule_sets_refused = Counter("streamsense_rule_sets_refused_total", "Published rule sets this worker "
                                         "could not load (it kept serving the rules it had)", registry=r)
        self.rules_shadowed = Counter("streamsense_rules_auto_shadowed_total", "Rules this worker switched to "
                                      "shadow because they fired on far more decisions than their backtest",
                                      ["rule"], registry=r)
        self.redis_errors = Counter("streamsense_redis_errors_total", "Failed Redis calls", ["operation"],
                                    registry=r)
        self.fenced = Counter("streamsense_fenced_batches", "Batches not committed: another worker owns their "
                              "partition in a newer consumer-group generation", registry=r)
        self.redis_data_loss = Counter("streamsense_redis_data_loss", "Times Redis was found to have lost its "
                                       "data (its epoch key vanished or changed)", registry=r)
        self.redis_eviction_unsafe = Gauge("streamsense_redis_eviction_unsafe", "1 when Redis's maxmemory-policy "
                                           "may evict decision guard keys", registry=r)
        self.breaker = Enum("streamsense_circuit_breaker_state", "Circuit breaker state; while open, decisions "
                            "are made without Redis (degraded)", ["dependency"], states=list(BREAKER_STATES),
                            registry=r)
        self.lag = Gauge("streamsense_consumer_lag", "Messages behind the high watermark", ["topic", "partition"],
                         registry=r)
        self.ready = Gauge("streamsense_ready", "1 when partitions are assigned, Redis answers and models are "
                           "loaded", registry=r)
        self.api_requests = Counter("streamsense_api_requests_total", "HTTP API answers by route and status",
                                    ["route", "status"], registry=r)
        self.api_seconds = Histogram("streamsense_api_seconds", "HTTP API request to answer", ["route"],
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.api_pending = Gauge("streamsense_api_pending", "HTTP API requests in progress (bounded by "
                                 "api_max_pending)", registry=r)
        self.experiment_share = Gauge("streamsense_experiment_share", "Percent of users in the treatment arm of "
                                      "each running experiment", ["model", "experiment"], registry=r)
        self.experiment_figure = Gauge("streamsense_experiment_figure", "Outcome figures per experiment arm (all "
                                       "workers' outcomes: every worker exports the same value), with the 95 % "
                                       "interval's low and high bounds", ["experiment", "arm", "figure", "bound"],
                                       registry=r)
        self.experiment_outcomes = Counter("streamsense_experiment_outcomes_total", "Decisions (fraud) and answers "
                                           "(reco) made in an experiment, by arm and outcome (this worker's)",
                                           ["experiment", "arm", "outcome"], registry=r)
        self._rolling = river_metrics.RollingROCAUC(window_size=1000)
        self._lag_series: set[tuple[str, int]] = set()
        self._serving: dict[str, tuple[str, int]] = {}  # model -> (generation, examples learned)
        self.breaker.labels("redis").state("closed")

    def labelled(self, model: str, is_fraud: bool, score: float, delay_s: float) -> None:
        self._rolling.update(is_fraud, score)
        self.rocauc.labels(model).set(self._rolling.get())
        self.label_delay.observe(max(delay_s, 0.0))
        self.labels.labels("chargeback" if is_fraud else "confirmed").inc()

    def breaker_state(self, state: str) -> None:
        self.breaker.labels("redis").state(state)

    def model_serving(self, model: str, model_version: str) -> None:
        """The model's info series and examples counter from its ``model_version`` (generation first,
        examples learned second).

        >>> m = Metrics()
        >>> m.model_serving("lr", "1.40.900"); m.model_serving("lr", "2.45.950")
        >>> [(s.labels["version"], s.value) for s in m.model_info.collect()[0].samples]
        [('2', 1.0)]
        >>> m.examples_learned.labels("lr")._value.get()
        45.0
        """
        generation, learned = model_version.split(".")[:2]
        before_generation, before_learned = self._serving.get(model, (None, 0))
        if before_generation not in (None, generation):
            self.model_info.remove(model, before_generation)
        self.model_info.labels(model, generation).set(1)
        if int(learned) > before_learned:  # a rollback to fewer examples is not negative learning
            self.examples_learned.labels(model).inc(int(learned) - before_learned)
        self._serving[model] = (generation, int(learned))

    def consumer_lag(self, lags: dict[tuple[str, int], int]) -> None:
        """Each assigned partition's lag; a partition no longer sampled loses its series."""
        for topic, partition in self._lag_series - lags.keys():
            self.lag.remove(topic, str(partition))
        for (topic, partition), lag in lags.items():
            self.lag.labels(topic, str(partition)).set(lag)
        self._lag_series = set(lags)

    def partitions_revoked(self, revoked: set[tuple[str, int]]) -> None:
        """Their lag is another worker's to report now (left here, a sum over workers counts it twice)."""
        for topic, partition in self._lag_series & revoked:
            self.lag.remove(topic, str(partition))
        self._lag_series -= revoked

    def render(self) -> bytes:
        return generate_latest(self.registry)
