"""Live figures in the terminal: read fraud-decisions and dead-letters back, join with the truth.

The ROCAUC is prequential: each decision's score was given before its label reached the model.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from river import metrics

from agents import clients
from agents.sim.simulator import Truth
from schemas.settings import Settings

WINDOW = 5000


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; nan when empty.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5), percentile([1.0, 2.0, 3.0, 4.0], 0.99)
    (2.0, 4.0)
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


@dataclass
class Figures:
    decisions: Counter = field(default_factory=Counter)
    dead_letters: Counter = field(default_factory=Counter)
    degraded: int = 0
    rocauc: metrics.ROCAUC = field(default_factory=metrics.ROCAUC)
    rolling_rocauc: metrics.RollingROCAUC = field(default_factory=lambda: metrics.RollingROCAUC(WINDOW))
    scored: int = 0
    first_5000_rocauc: float | None = None
    e2e_ms: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    processing_ms: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    arrivals: deque = field(default_factory=lambda: deque(maxlen=50_000))
    model_version: str = "-"
    strategies: Counter = field(default_factory=Counter)
    hits: Counter = field(default_factory=Counter)  # strategy -> held-back item in the list
    judged: Counter = field(default_factory=Counter)  # strategy -> answers with a held-back item
    reco_ms: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    drift: Counter = field(default_factory=Counter)
    experiments: dict = field(default_factory=dict)  # model -> its latest experiment record (model-events)
    arms: Counter = field(default_factory=Counter)  # (experiment, arm, "n" | "flagged" | "fraud" | "caught")

    def add_experiment_event(self, doc: dict) -> None:
        if doc.get("event", "").startswith("experiment_"):
            self.experiments[doc["role"]] = doc

    def add_decision(self, doc: dict, truth: Truth, now: float) -> None:
        self.decisions[doc["decision"]] += 1
        if doc.get("experiment"):
            tag = (doc["experiment"], doc["arm"])
            flagged = doc["decision"] != "approve"
            self.arms[(*tag, "n")] += 1
            self.arms[(*tag, "flagged")] += flagged
            if truth.is_fraud.get(doc["event_id"]):
                self.arms[(*tag, "fraud")] += 1
                self.arms[(*tag, "caught")] += flagged
        self.degraded += bool(doc.get("degraded"))
        self.model_version = f"{doc.get('model')} v{doc.get('model_version')}"
        if doc.get("rules"):
            self.model_version += f"  rules {doc['rules']['version']}"
        self.processing_ms.append(float(doc.get("latency_ms", 0.0)))
        self.arrivals.append(now)
        sent = truth.sent_at.pop(doc["event_id"], None)
        if sent is not None:
            self.e2e_ms.append((now - sent) * 1000.0)
        label = truth.is_fraud.pop(doc["event_id"], None)
        if label is not None:
            self.rocauc.update(label, doc["score"])
            self.rolling_rocauc.update(label, doc["score"])
            self.scored += 1
            if self.scored == 5000:
                self.first_5000_rocauc = self.rocauc.get()

    def add_recommendation(self, doc: dict, truth: Truth, now: float) -> None:
        strategy = doc["strategy"]
        self.strategies[strategy] += 1
        sent = truth.sent_at.pop(doc["request_id"], None)
        if sent is not None:
            self.reco_ms.append((now - sent) * 1000.0)
        held_back = truth.next_item.pop(doc["request_id"], None)
        if held_back is not None:
            self.judged[strategy] += 1
            self.hits[strategy] += held_back in {i["item_id"] for i in doc["items"][:10]}

    def hit_rate(self, strategy: str) -> str:
        return f"{self.hits[strategy] / self.judged[strategy]:.3f}" if self.judged[strategy] else "-"

    def rate(self, now: float, over: float = 5.0) -> float:
        return sum(1 for t in self.arrivals if t >= now - over) / over

    def render(self, truth: Truth, now: float) -> str:
        d = self.decisions
        first = f"{self.first_5000_rocauc:.4f}" if self.first_5000_rocauc is not None else "(after 5,000)"
        lines = [
            "streamsense dev - live figures (Ctrl-C to stop)",
            f"  sent          transactions {truth.transactions:,}  labels {truth.labels:,}  poison {truth.poison:,}",
            f"  throughput    {self.rate(now):,.0f} decisions/s",
            f"  decisions     approve {d['approve']:,}  review {d['review']:,}  decline {d['decline']:,}"
            f"  (degraded {self.degraded:,})",
            f"  ROCAUC        all {self.rocauc.get():.4f}  rolling-{WINDOW} {self.rolling_rocauc.get():.4f}"
            f"  first 5,000 {first}",
            f"  latency ms    end-to-end p50 {percentile(list(self.e2e_ms), .5):.1f}"
            f" p99 {percentile(list(self.e2e_ms), .99):.1f}"
            f"  | processing p50 {percentile(list(self.processing_ms), .5):.1f}"
            f" p99 {percentile(list(self.processing_ms), .99):.1f}",
            f"  dead letters  {sum(self.dead_letters.values()):,} "
            + " ".join(f"{stage}={n}" for stage, n in sorted(self.dead_letters.items())),
            f"  model         {self.model_version}",
            f"  drift         {sum(self.drift.values()):,} signals "
            + " ".join(f"{target}={n}" for target, n in sorted(self.drift.items())),
            f"  reco          interactions {truth.interactions:,}  requests {truth.requests:,}  answered "
            f"{sum(self.strategies.values()):,}  cold-start share "
            f"{self.strategies['popular'] / max(1, sum(self.strategies.values())):.2f}",
            f"  hit-rate@10   personal {self.hit_rate('personal')}  popular {self.hit_rate('popular')}"
            f"  explore {self.hit_rate('explore')}  | answer ms p50 {percentile(list(self.reco_ms), .5):.1f}"
            f" p99 {percentile(list(self.reco_ms), .99):.1f}",
        ]
        lines += self.experiment_lines()
        return "\n".join(lines)

    def experiment_lines(self) -> list[str]:
        """The latest experiment per model (streamsense experiments) and what its arms decided here."""
        out = []
        for model, e in sorted(self.experiments.items()):
            state = e["event"].removeprefix("experiment_")
            out.append(f"  experiment    {e['experiment']} ({model}) treatment {e['treatment']} at {e['share']:g} %"
                       f"  [{state}{': ' + e['reason'] if e['reason'] else ''}]")
            for arm in ("control", "treatment"):
                a = {k: self.arms[(e["experiment"], arm, k)] for k in ("n", "flagged", "fraud", "caught")}
                if a["n"]:
                    out.append(f"    {arm:<11} decisions {a['n']:,}  review+decline {a['flagged'] / a['n']:.3f}"
                               f"  fraud caught {a['caught']}/{a['fraud']}")
        return out


async def follow(settings: Settings, truth: Truth, figures: Figures, stop: asyncio.Event,
                 refresh_s: float = 2.0, out=sys.stdout) -> None:
    """Consume the output topics and redraw the figures every ``refresh_s`` until ``stop``."""
    t = settings.topics
    consumer = clients.consumer(settings, t.fraud_decisions, t.dead_letters, t.recommendations, t.drift_signals,
                                t.model_events, auto_offset_reset="earliest", enable_auto_commit=False,
                                fetch_max_wait_ms=settings.fetch_max_wait_ms)
    await consumer.start()
    tty = out.isatty()
    last_draw = 0.0
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            now = time.time()
            for tp, records in batches.items():
                for record in records:
                    doc = json.loads(record.value)
                    if tp.topic == t.dead_letters:
                        figures.dead_letters[doc.get("stage", "?")] += 1
                    elif tp.topic == t.drift_signals:
                        figures.drift[doc["target"]] += 1
                    elif tp.topic == t.model_events:
                        figures.add_experiment_event(doc)
                    elif tp.topic == t.recommendations:
                        figures.add_recommendation(doc, truth, now)
                    else:
                        figures.add_decision(doc, truth, now)
            if now - last_draw >= refresh_s:
                last_draw = now
                text = figures.render(truth, now)
                out.write(("\x1b[H\x1b[2J" + text + "\n") if tty else (text + "\n\n"))
                out.flush()
    finally:
        await consumer.stop()


def summary(figures: Figures) -> dict:
    return {
        "decisions": dict(figures.decisions),
        "dead_letters": dict(figures.dead_letters),
        "rocauc": figures.rocauc.get(),
        "rocauc_first_5000": figures.first_5000_rocauc,
        "e2e_p50_ms": percentile(list(figures.e2e_ms), .5),
        "e2e_p99_ms": percentile(list(figures.e2e_ms), .99),
        "median_processing_ms": statistics.median(figures.processing_ms) if figures.processing_ms else None,
        "recommendations": dict(figures.strategies),
        "drift_signals": dict(figures.drift),
        "hit_rate_at_10": {s: figures.hits[s] / figures.judged[s] for s in figures.judged if figures.judged[s]},
    }
