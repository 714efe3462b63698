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
    "fraud": [{"events": 1000, "seconds": 0.2, "cpu_s": 0.3, "rate": r} for r in (4000, 7000, 5000)]},
    "latency": {"fraud": {"offered": 2000.0, "answered": 10, "p50": 4.0, "p99": 30.0, "max": 40.0}}}


def test_medians_and_ratios() -> None:
    med = medians(RESULT)
    assert med["fraud"]["rate"] == 5000 and med["fraud"]["cpu_per_1k"] == 0.3
    assert ratios(med) == {"fraud/ceiling": 0.5, "fraud/naive": 20.0}  # no reco run: no reco ratio


def test_the_table_says_which_targets_are_met(capsys) -> None:
    print_pipeline(RESULT)
    out = capsys.readouterr().out
    assert "| streamsense fraud path" in out and "5,000" in out
    assert "ratio fraud/ceiling   0.50x   (target >= 0.6x: MISSED)" in out
    assert "ratio fraud/naive    20.00x   (target >= 4.0x: met)" in out
    assert "p99 30.0 ms   (target p50 <= 5, p99 <= 25: MISSED)" in out
