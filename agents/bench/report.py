"""The pipeline benchmark's table: medians of the runs, ratios against the baselines, and every
target printed as met or MISSED (never asserted: the machines are shared and noisy)."""

from __future__ import annotations

import statistics

SCENARIOS = ("ceiling", "naive", "fraud", "reco")
LABELS = {"ceiling": "bare Faust, decode only (ceiling)", "naive": "naive Faust + River (docs style)",
          "fraud": "streamsense fraud path", "fraud-alone": "  its processor alone (no Faust)",
          "reco": "streamsense recommendation path", "reco-alone": "  its processor alone (no Faust)"}
ROWS = ("ceiling", "naive", "fraud", "fraud-alone", "reco", "reco-alone")
TARGETS = {"fraud/ceiling": 0.6, "fraud/naive": 4.0, "reco/ceiling": 0.4}


def medians(result: dict) -> dict[str, dict[str, float]]:
    out = {}
    for scenario, runs in result["throughput"].items():
        out[scenario] = {"rate": statistics.median(r["rate"] for r in runs),
                         "cpu_per_1k": statistics.median(r["cpu_s"] / r["events"] * 1000 for r in runs),
                         "rates": [r["rate"] for r in runs]}
    return out


def ratios(med: dict[str, dict[str, float]]) -> dict[str, float]:
    out = {}
    for name in TARGETS:
        a, b = name.split("/")
        if a in med and b in med and med[b]["rate"]:
            out[name] = med[a]["rate"] / med[b]["rate"]
    return out


def cpu_bounds(med: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per path, the best ratio to the ceiling one core allows if Faust cost each event what it
    costs the ceiling and our work cost only what the processor alone costs.

    >>> cpu_bounds({"ceiling": {"cpu_per_1k": 0.1}, "fraud-alone": {"cpu_per_1k": 0.3}})
    {'fraud': 0.25}
    """
    return {path: round(med["ceiling"]["cpu_per_1k"] / (med["ceiling"]["cpu_per_1k"] +
                                                        med[path + "-alone"]["cpu_per_1k"]), 4)
            for path in ("fraud", "reco") if "ceiling" in med and path + "-alone" in med}


def print_pipeline(result: dict) -> None:
    med = medians(result)
    print(f"throughput: backlog of {result['events']:,} events (naive: fewer), median of {result['runs']} runs; "
          f"latency at {next(iter(result['latency'].values()), {}).get('offered', 0):,.0f} events/s offered")
    print(f"| {'scenario':38s} | {'events/s':>9s} | {'CPU s / 1k':>10s} | {'p50 ms':>7s} | {'p99 ms':>7s} | "
          f"{'max ms':>8s} |")
    print(f"|{'-' * 40}|{'-' * 11}|{'-' * 12}|{'-' * 9}|{'-' * 9}|{'-' * 10}|")
    for scenario in ROWS:
        if scenario not in med:
            continue
        lat = result["latency"].get(scenario, {})
        cells = [f"{lat[k]:.1f}" if k in lat else "-" for k in ("p50", "p99", "max")]
        print(f"| {LABELS[scenario]:38s} | {med[scenario]['rate']:9,.0f} | {med[scenario]['cpu_per_1k']:10.3f} | "
              f"{cells[0]:>7s} | {cells[1]:>7s} | {cells[2]:>8s} |")
    print()
    for name, value in ratios(med).items():
        verdict = "met" if value >= TARGETS[name] else "MISSED"
        print(f"ratio {name:14s} {value:5.2f}x   (target >= {TARGETS[name]}x: {verdict})")
    for path, bound in cpu_bounds(med).items():
        print(f"{path}: Faust's own {med['ceiling']['cpu_per_1k']:.3f} + the processor's "
              f"{med[path + '-alone']['cpu_per_1k']:.3f} CPU ms per event: at most {bound:.2f}x the ceiling "
              f"while every event goes through both (target >= {TARGETS[path + '/ceiling']}x)")
    fraud = result["latency"].get("fraud", {})
    if "p99" in fraud:
        ok = fraud["p99"] <= 25 and fraud["p50"] <= 5
        print(f"fraud latency p50 {fraud['p50']:.1f} ms p99 {fraud['p99']:.1f} ms   "
              f"(target p50 <= 5, p99 <= 25: {'met' if ok else 'MISSED'})")
    if "memory" in result:
        m = result["memory"]
        print(f"memory after {m['users']:,} distinct users: Redis {m['redis_bytes_per_user']:.0f} B/user in all, "
              f"user feature state {m['state_bytes_per_user']:.0f} B/user (target <= 1024: "
              f"{'met' if m['state_bytes_per_user'] <= 1024 else 'MISSED'}); by key kind "
              + ", ".join(f"{k} {v:.0f}" for k, v in sorted(m["bytes_by_kind_per_user"].items()))
              + f"; worker RSS {m['worker_rss'] / 2 ** 20:.0f} MiB")
    if "soak" in result:
        s = result["soak"]
        print(f"soak {s['seconds']:.0f} s at {s['rate']:.0f} tx/s over {s['users']:,} users: RSS start "
              f"{s['rss_start'] / 2 ** 20:.1f} MiB, middle {s['rss_middle'] / 2 ** 20:.1f}, end "
              f"{s['rss_end'] / 2 ** 20:.1f} ({s['growth']:+.1%}; target within 10%: "
              f"{'met' if abs(s['growth']) <= 0.10 else 'MISSED'})")
        print("  RSS by minute (MiB): " + " ".join(f"{r / 2 ** 20:.0f}" for r in s.get("rss_by_minute", [])))
