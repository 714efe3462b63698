"""The pure parts of the API benchmark: request plans, the summary and the table's verdict."""

from __future__ import annotations

import json

from agents.bench.api import print_api, reco_requests, score_requests, summary


def test_request_plans() -> None:
    scores = list(score_requests(50, seed=3))
    assert len(scores) == 50 and {(m, p) for m, p, _ in scores} == {("POST", "/v1/score")}
    assert len({json.loads(body)["event_id"] for _, _, body in scores}) == 50
    assert [p for _, p, _ in reco_requests(["a", "b"], 3)] == [f"/v1/recommendations/{u}?k=10" for u in "aba"]


def test_summary_and_verdict(capsys) -> None:
    timings = [(200, float(ms)) for ms in range(1, 101)] + [(429, 500.0)]
    s = summary(timings, 200.0)
    assert (s["requests"], s["p50"], s["p99"], s["max"]) == (101, 51.0, 100.0, 500.0)
    assert s["statuses"] == {"200": 100, "429": 1}
    fast = summary([(200, 2.0)] * 10, 200.0)
    print_api({"rate": 200.0, "seconds": 1.0, "users_learned": 5,
               "endpoints": {"GET /health": fast, "POST /v1/score": s}})
    out = capsys.readouterr().out
    assert "score p99 100.00 ms (target <= 15 ms: MISSED)" in out and "50.0x" in out
    print_api({"rate": 200.0, "seconds": 1.0, "users_learned": 5,
               "endpoints": {"GET /health": fast, "POST /v1/score": fast}})
    assert "target <= 15 ms: met" in capsys.readouterr().out
