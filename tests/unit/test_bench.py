"""The benchmark command runs end to end (its figures are read by people, never asserted as timings)."""

from agents.bench.ranking import bench_ranking


def test_ranking_bench_reports_every_figure_for_the_requested_sizes() -> None:
    result = bench_ranking(candidates=50, requests=12, train=800)
    assert result["candidates"] == 50 and result["requests"] == 12
    assert sum(result["answer_strategies"].values()) == 12
    assert {"streamsense_ms_p50", "answer_ms_p50", "river_rank_ms_p50", "speedup"} <= set(result)
