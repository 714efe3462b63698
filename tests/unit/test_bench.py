"""The benchmark command runs end to end (its figures are read by people, never asserted as timings)."""

import math

from agents.bench.capacity import learner_costs
from agents.bench.ranking import bench_ranking


def test_ranking_bench_reports_every_figure_for_the_requested_sizes() -> None:
    result = bench_ranking(candidates=50, requests=12, train=800)
    assert result["candidates"] == 50 and result["requests"] == 12
    assert sum(result["answer_strategies"].values()) == 12
    assert {"streamsense_ms_p50", "answer_ms_p50", "river_rank_ms_p50", "speedup"} <= set(result)


def test_the_capacity_benchmark_times_each_kind_of_learner_example() -> None:
    costs = learner_costs(30)
    assert len(costs) == 3 and all(math.isfinite(c) and c >= 0 for c in costs)
