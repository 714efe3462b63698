"""The worker's metrics registry: collectors beside ours, series removed when they stop being true
(a revoked partition's lag, a generation no longer served), the breaker as a state set."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import Metrics


def samples(metrics: Metrics, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(metrics.render().decode()) for s in f.samples if s.name == name}


def test_process_and_gc_collectors_are_on_the_workers_registry() -> None:
    names = {f.name for f in text_string_to_metric_families(Metrics().render().decode())}
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "process_open_fds", "python_gc_collections",
            "python_info"} <= names


def test_a_revoked_partitions_lag_series_is_removed_and_the_others_kept() -> None:
    m = Metrics()
    m.consumer_lag({("transactions", 0): 5, ("transactions", 1): 7, ("interactions", 0): 2})
    m.partitions_revoked({("transactions", 1), ("interactions", 3)})
    assert samples(m, "streamsense_consumer_lag") == {(("partition", "0"), ("topic", "transactions")): 5.0,
                                                      (("partition", "0"), ("topic", "interactions")): 2.0}
    # The next sample names only what is assigned and fetched: anything else goes.
    m.consumer_lag({("transactions", 0): 1})
    assert samples(m, "streamsense_consumer_lag") == {(("partition", "0"), ("topic", "transactions")): 1.0}
    m.partitions_revoked({("transactions", 0)})
    assert samples(m, "streamsense_consumer_lag") == {}


def test_model_info_names_the_generation_served_and_the_counter_counts_examples_gained() -> None:
    m = Metrics()
    m.model_serving("lr+hst+rules", "1.100.5000")
    m.model_serving("lr+hst+rules", "1.130.5200")
    m.model_serving("biased-mf", "1.40")
    m.model_serving("lr+hst+rules", "2.90.5300")  # a promotion (or a rollback to fewer examples)
    assert samples(m, "streamsense_model_info") == {(("model", "biased-mf"), ("version", "1")): 1.0,
                                                    (("model", "lr+hst+rules"), ("version", "2")): 1.0}
    assert samples(m, "streamsense_model_examples_learned_total") == {(("model", "lr+hst+rules"),): 130.0,
                                                                      (("model", "biased-mf"),): 40.0}
    m.model_serving("lr+hst+rules", "2.95.5301")
    assert samples(m, "streamsense_model_examples_learned_total")[(("model", "lr+hst+rules"),)] == 135.0


def test_the_breaker_is_one_state_at_a_time() -> None:
    m = Metrics()

    def states() -> dict[str, float]:
        return {dict(k)["streamsense_circuit_breaker_state"]: v
                for k, v in samples(m, "streamsense_circuit_breaker_state").items()}

    assert states() == {"closed": 1.0, "half_open": 0.0, "open": 0.0}
    m.breaker_state("open")
    assert states() == {"closed": 0.0, "half_open": 0.0, "open": 1.0}
