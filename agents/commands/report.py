"""`streamsense evaluate --report DIR`: an HTML page with the run's figures and plots (matplotlib).

Plots: rolling ROCAUC and log loss per configuration with drift signals and promotions marked on
the timeline; the reliability curve (mean score against observed fraud rate per score bin); for
ratings, hit-rate@K of the personal ranking against popularity over time (per stretch of ratings).
"""

from __future__ import annotations

import bisect
import html
import json
from pathlib import Path

import numpy as np

from online_models.evaluation import Trace, exact_rocauc, reliability

ROLLING_POINTS = 60  # points per rolling curve


def rolling(labels: list[bool], scores: list[float], window: int) -> tuple[list[int], list[float], list[float]]:
    """ROCAUC and log loss over the last ``window`` events, at ``ROLLING_POINTS`` points; ROCAUC is
    NaN where the window holds one class only.

    >>> ends, auc, loss = rolling([False, True] * 50, [0.2, 0.8] * 50, 20)
    >>> ends[-1], auc[-1], round(loss[-1], 3)
    (100, 1.0, 0.223)
    """
    y, p = np.array(labels, dtype=bool), np.clip(np.array(scores, dtype=float), 1e-15, 1 - 1e-15)
    step = max(1, len(y) // ROLLING_POINTS)
    ends = list(range(min(window, len(y)), len(y) + 1, step))
    if ends and ends[-1] != len(y):
        ends.append(len(y))
    auc, loss = [], []
    for end in ends:
        wy, wp = y[max(0, end - window):end], p[max(0, end - window):end]
        loss.append(float(-np.mean(np.where(wy, np.log(wp), np.log(1 - wp)))))
        auc.append(exact_rocauc(wy, wp))
    return ends, auc, loss


def _markers(ax, trace: Trace) -> None:
    for name, signals in trace.signals.items():
        for signal in signals:
            at = bisect.bisect_left(trace.ts, signal.detected_at)
            ax.axvline(at, color="tab:red", linestyle="--", linewidth=1)
            ax.annotate(f"drift: {signal.name} ({name})", (at, 1.0), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=7, color="tab:red")
    for name, events in trace.model_events.items():
        for event in events:
            if event.get("event") == "promoted" and isinstance(event.get("at"), int):
                ax.axvline(event["at"], color="tab:green", linestyle=":", linewidth=1.5)
                ax.annotate(f"promoted {event['model']} ({name})", (event["at"], 0.0),
                            xycoords=("data", "axes fraction"), rotation=90, va="bottom", ha="right", fontsize=7,
                            color="tab:green")


def _binary_plots(trace: Trace, directory: Path, plt) -> list[tuple[str, str]]:
    n = len(trace.ts)
    window = max(100, n // 10)
    fig, (ax_auc, ax_loss) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for name, s in trace.scores.items():
        ends, auc, loss = rolling(s.labels, s.scores, window)
        ax_auc.plot(ends, auc, label=name)
        ax_loss.plot(ends, loss, label=name)
    ax_auc.set_ylabel(f"ROCAUC (last {window:,} events)")
    ax_loss.set_ylabel(f"log loss (last {window:,} events)")
    ax_loss.set_xlabel("events")
    ax_auc.legend(loc="lower right", fontsize=8)
    for ax in (ax_auc, ax_loss):
        _markers(ax, trace)
    fig.tight_layout()
    fig.savefig(directory / "rolling.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    for name, s in trace.scores.items():
        curve = reliability(s.labels, s.scores)
        ax.plot([c["score"] for c in curve], [c["observed"] for c in curve], marker="o", label=name)
    ax.set_xlabel("mean score in the bin")
    ax.set_ylabel("observed positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(directory / "reliability.png", dpi=100)
    plt.close(fig)
    return [("rolling.png", "Rolling ROCAUC and log loss (red: drift signals, green: promotions)"),
            ("reliability.png", "Reliability curve (10 equal-width score bins)")]


def _ranking_plot(trace: Trace, directory: Path, plt) -> list[tuple[str, str]]:
    fig, ax = plt.subplots(figsize=(10, 4))
    previous = (0, 0, {"personal": 0, "popular": 0})
    points: dict[str, list[tuple[int, float]]] = {"personal": [], "popular": []}
    for n, ranked, hits in trace.ranking:
        if ranked > previous[1]:
            for strategy in points:
                points[strategy].append((n, (hits[strategy] - previous[2][strategy]) / (ranked - previous[1])))
        previous = (n, ranked, hits)
    for strategy, xy in points.items():
        ax.plot([x for x, _ in xy], [y for _, y in xy], marker=".", label=strategy)
    ax.set_xlabel("ratings")
    ax.set_ylabel(f"hit-rate@{trace.k} (per stretch)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(directory / "ranking.png", dpi=100)
    plt.close(fig)
    return [("ranking.png", f"Hit-rate@{trace.k}: personal ranking against popularity")]


def write_report(trace: Trace, result: dict, directory: Path, title: str) -> Path:
    """Write ``index.html`` and its PNG plots into ``directory``; returns the page's path."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    images = _binary_plots(trace, directory, plt) if trace.scores else []
    images += _ranking_plot(trace, directory, plt) if trace.ranking else []
    columns = [k for k, v in next(iter(result.values()), {}).items() if not isinstance(v, (list, dict))]
    rows = "".join(f"<tr><th>{html.escape(name)}</th>{''.join(_cell(figures.get(k, '')) for k in columns)}</tr>"
                   for name, figures in result.items())
    header = "".join(f"<th>{html.escape(k)}</th>" for k in columns)
    signals = "".join(f"<li>{html.escape(name)}: {html.escape(json.dumps(s.to_dict()))}</li>"
                      for name, found in trace.signals.items() for s in found)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><table border='1'><tr><th></th>{header}</tr>{rows}</table>"
            + "".join(f"<h2>{html.escape(caption)}</h2><img src='{name}' alt='{html.escape(caption)}'>"
                      for name, caption in images)
            + f"<h2>Drift signals</h2><ul>{signals or '<li>none</li>'}</ul></body></html>")
    path = directory / "index.html"
    path.write_text(page)
    return path


def _cell(value) -> str:
    if isinstance(value, float):
        return f"<td>{value:.4f}</td>"
    return f"<td>{html.escape(str(value))}</td>"
