"""The pure parts of the pipeline benchmark: traffic, process figures, medians, ratios, the table."""

from __future__ import annotations

import asyncio
import json
import os
import time

from agents.bench.io import cpu_seconds, fraud_traffic, reco_traffic, restamped, rss_bytes
from agents.bench.report import medians, print_pipeline, ratios
from agents.sim.pacing import Pacer


def test_fraud_traffic_yields_the_requested_transactions_with_their_labels_before_now() -> None:
    now = 1_800_000_000.0
    msgs = list(fraud_traffic(300, seed=1, now=now))
    txs = [json.loads(v) for t, _, v in msgs if t == "transactions"]
    assert len(txs) == 300 and all(tx["ts"] < now for tx in txs)
    assert {t for t, _, _ in msgs} <= {"transactions", "fraud_labels"}
    assert not [m for m in fraud_traffic(300, seed=1, now=now, labels=False) if m[0] == "fraud_labels"]


def test_reco_traffic_and_restamping() -> None:
    msgs = list(reco_traffic(200, seed=2))
    assert len(msgs) == 200 and {t for t, _, _ in msgs} == {"interactions", "reco_requests"}
    before = time.time()
    (_, key, value), = restamped(msgs[:1])
    assert key == msgs[0][1] and json.loads(value)["ts"] >= round(before, 3) - 0.001


def test_process_figures_of_this_process() -> None:
    spent = cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds(os.getpid()) > spent and rss_bytes(os.getpid()) > 10 * 2 ** 20


def test_pacer_holds_the_rate() -> None:
    async def send(n: int, rate: float) -> float:
        pacer, start = Pacer(rate), time.monotonic()
        for _ in range(n):
            await pacer.sent_one()
        return time.monotonic() - start

    assert 0.19 <= asyncio.run(send(40, 200.0)) < 2.0  # 40 messages at 200/s take at least 0.2 s


RESULT = {"events": 1000, "runs": 3, "throughput": {
    "ceiling": [{"events": 1000, "seconds": 0.1, "cpu_s": 0.1, "rate": r} for r in (9000, 10000, 11000)],
    "naive": [{"events": 1000, "seconds": 4.0, "cpu_s": 4.0, "rate": r} for r in (240, 250, 260)],
    "emit": [{"events": 1000, "seconds": 0.5, "cpu_s": 0.2, "rate": r} for r in (2000, 2500, 3000)],
    "fraud": [{"events": 1000, "seconds": 0.2, "cpu_s": 0.3, "rate": r} for r in (4000, 7000, 5000)],
    "fraud-alone": [{"events": 1000, "seconds": 0.1, "cpu_s": 0.15, "rate": 10000}]},
    "latency": {"fraud": {"offered": 2500.0, "answered": 10, "p50": 4.0, "p99": 130.0, "max": 140.0}}}


def test_medians_and_ratios() -> None:
    med = medians(RESULT)
    assert med["fraud"]["rate"] == 5000 and med["fraud"]["cpu_per_1k"] == 0.3
    assert ratios(med) == {"fraud/ceiling": 0.5, "fraud/emit": 2.0, "fraud/naive": 20.0}  # no reco run: no reco ratio


def test_the_table_says_which_targets_are_met(capsys) -> None:
    print_pipeline(RESULT)
    out = capsys.readouterr().out
    assert "| streamsense fraud path" in out and "5,000" in out
    assert "ratio fraud/ceiling   0.50x   (target >= 0.5x: met, moonshot 0.6x: MISSED)" in out
    assert "ratio fraud/emit      2.00x   (target >= 1.0x: met)" in out
    assert "ratio fraud/naive    20.00x   (target >= 4.0x: met)" in out
    # 0.3 CPU ms per event against 0.1 (ceiling) + 0.15 (processor alone): a hidden 20 %
    assert "fraud worker CPU per event 0.300 ms = 1.20x (ceiling + processor alone) (target <= 1.25x: met)" in out
    assert "fraud latency at 2,500 events/s offered: p50 4.0 ms p99 130.0 ms" in out and "p99 <= 100: MISSED" in out
    assert "scale-out" in out and "not measured" in out
