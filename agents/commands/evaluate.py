"""`streamsense evaluate`: pick the data set, run the prequential evaluation, print or emit JSON."""

from __future__ import annotations

import inspect
import json
import math
import sys
import time
from pathlib import Path

from agents.commands import datasets
from online_models.evaluation import LabelDelay, Trace, evaluate_binary, evaluate_ratings, take
from schemas.settings import Settings

FRAUD_CONFIGS = ["default", "river-hst", "river-lr"]
STREAM_CONFIGS = ["classifier", "lifecycle", "river-lr", "river-arf", "no-change"]


def detect_kind(source: str) -> str:
    path = Path(source)
    if not path.exists():
        return "river"
    if path.suffix == ".csv":
        return "csv"
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        return "transactions"
    return "ratings"


class Progress:
    """A one-line progress bar on stderr when it is a terminal (a counter when the total is unknown).

    >>> Progress.line(250, 1000, 50.0)
    '  [#####               ]  25%  250/1,000 events  50/s'
    >>> Progress.line(250, None, 50.0)
    '  250 events  50/s'
    """

    def __init__(self, enabled: bool, total: int | None = None) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total
        self.started = time.monotonic()

    @staticmethod
    def line(n: int, total: int | None, rate: float, width: int = 20) -> str:
        if not total:
            return f"  {n:,} events  {rate:,.0f}/s"
        done = min(n / total, 1.0)
        bar = "#" * int(done * width)
        return f"  [{bar:<{width}}] {done:4.0%}  {n:,}/{total:,} events  {rate:,.0f}/s"

    def __call__(self, n: int) -> None:
        if self.enabled and n % 500 == 0:
            rate = n / max(time.monotonic() - self.started, 1e-9)
            sys.stderr.write("\r" + self.line(n, self.total, rate))
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def counted(events, progress: Progress):
    for n, event in enumerate(events, start=1):
        progress(n)
        yield event


def run_evaluate(settings: Settings, source: str, *, kind: str = "auto", models: list[str] | None = None,
                 delay: str = "none", limit: int | None = None, every: int = 0, k: int = 10,
                 labels: str | None = None, label_column: str = "class", positive: str = "1",
                 as_json: bool = False, report: str | None = None, out=sys.stdout) -> dict:
    """Evaluate ``source`` and print the figures; ``report``: a directory for an HTML page with plots."""
    kind = detect_kind(source) if kind == "auto" else kind
    progress = Progress(not as_json, expected_events(source, kind, limit))
    trace = Trace() if report else None

    def checkpoint(n: int, figures: dict) -> None:
        if not as_json:
            progress.done()
            out.write(format_figures(f"after {n:,} events", figures))

    if kind == "ratings":
        result = evaluate_ratings(counted(take(datasets.ratings(Path(source)), limit), progress), settings, k=k,
                                  every=every, on_checkpoint=lambda n, f: checkpoint(n, {"ratings": f}), trace=trace)
        result = {"ratings": result}
    else:
        if kind == "river":
            events, default_models = datasets.river_dataset(source, settings.seed), STREAM_CONFIGS
        elif kind == "stream":
            events = datasets.labelled_csv(Path(source), label=label_column, positive=positive)
            default_models = STREAM_CONFIGS
        elif kind == "csv":
            events, default_models = datasets.transactions_csv(Path(source)), FRAUD_CONFIGS
        else:
            events = datasets.transactions_jsonl(Path(source), settings, Path(labels) if labels else None)
            default_models = FRAUD_CONFIGS
        result = evaluate_binary(counted(take(events, limit), progress), models or default_models, settings,
                                 delay=LabelDelay.parse(delay, settings.seed), every=every, on_checkpoint=checkpoint,
                                 trace=trace)
    progress.done()
    out.write(json.dumps(finite(result), indent=2) + "\n" if as_json else format_figures("final", result))
    if report:
        from agents.commands.report import write_report  # matplotlib only when a report is asked for

        page = write_report(trace, result, Path(report), f"streamsense evaluate {source}")
        if not as_json:
            out.write(f"report: {page}\n")
    return result


def finite(value):
    """NaN (e.g. precision with nothing flagged) becomes null: JSON has no NaN.

    >>> finite({"a": float("nan"), "b": [1.0]})
    {'a': None, 'b': [1.0]}
    """
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def expected_events(source: str, kind: str, limit: int | None) -> int | None:
    """How many events the run will see, when it can be known cheaply (for the progress bar).

    >>> expected_events("Phishing", "river", None), expected_events("Phishing", "river", 100)
    (1250, 100)
    >>> expected_events("Agrawal", "river", None) is None  # a synthetic generator: endless
    True
    """
    if kind == "river":
        from river import datasets

        cls = getattr(datasets, source, None)
        # A class that needs arguments is a synthetic generator: endless, no count.
        needs_arguments = cls is None or any(p.default is p.empty for p in inspect.signature(cls).parameters.values()
                                             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        total = None if needs_arguments else getattr(cls(), "n_samples", None)
        total = total if isinstance(total, int) else None
    else:
        with open(source, "rb") as fh:
            total = sum(1 for line in fh if line.strip()) - (1 if kind in ("csv", "stream") else 0)
    return min(total, limit) if total is not None and limit is not None else (total or limit)


def format_figures(title: str, figures: dict) -> str:
    lines = [f"{title}:"]
    for name, values in figures.items():
        shown = "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        lines.append(f"  {name:<12} {shown}")
    return "\n".join(lines) + "\n"
