"""`streamsense evaluate --report DIR`: the page is written and its plots show something."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import numpy as np
from matplotlib import image

from agents.commands.evaluate import run_evaluate
from schemas.settings import Settings
from tests.unit.test_evaluation import synthetic_udata


def concept_change_csv(path: Path, rows: int = 3000, seed: int = 3) -> None:
    """One feature decides the label, and at half-way the rule flips (a concept change)."""
    rng = random.Random(seed)
    lines = ["x1,x2,class"]
    for n in range(rows):
        x1, x2 = rng.random(), rng.random()
        lines.append(f"{x1:.4f},{x2:.4f},{int((x1 > 0.5) == (n < rows // 2))}")
    path.write_text("\n".join(lines) + "\n")


def assert_images_show_something(page: Path, expected: set[str]) -> str:
    text = page.read_text()
    shown = set(re.findall(r"<img src='([^']+)'", text))
    assert shown == expected
    for name in shown:
        png = page.parent / name
        pixels = image.imread(png)[..., :3]
        drawn = (pixels.min(axis=-1) < 0.9).mean()  # share of pixels that are not white
        assert png.stat().st_size > 10_000 and 0.01 < drawn < 0.9, (name, png.stat().st_size, drawn)
    return text


def test_a_classification_report_plots_rolling_figures_reliability_and_the_drift(tmp_path) -> None:
    data = tmp_path / "change.csv"
    concept_change_csv(data)
    out = io.StringIO()
    result = run_evaluate(Settings(), str(data), kind="stream", models=["lifecycle", "river-lr"],
                          report=str(tmp_path / "report"), out=out)
    assert "report: " in out.getvalue()
    text = assert_images_show_something(tmp_path / "report" / "index.html", {"rolling.png", "reliability.png"})
    assert result["lifecycle"]["events"] == 3000
    assert "&quot;target&quot;: &quot;error&quot;" in text  # the concept change, listed under the plots


def test_a_ratings_report_plots_hit_rate_against_popularity(tmp_path) -> None:
    data = tmp_path / "u.data"
    synthetic_udata(data)
    run_evaluate(Settings(), str(data), kind="ratings", report=str(tmp_path / "report"), out=io.StringIO())
    assert_images_show_something(tmp_path / "report" / "index.html", {"ranking.png"})


def test_rolling_rocauc_matches_the_whole_stream_when_the_window_is_the_stream() -> None:
    from river import metrics

    from agents.commands.report import rolling

    rng = np.random.default_rng(1)
    labels = list(rng.random(500) < 0.3)
    scores = [float(v) for v in rng.random(500) * 0.5 + np.array(labels) * 0.3]
    auc = metrics.ROCAUC(n_thresholds=1000)
    for y, s in zip(labels, scores, strict=True):
        auc.update(y, s)
    _, rolled, _ = rolling(labels, scores, 500)
    assert abs(rolled[-1] - auc.get()) < 0.01
