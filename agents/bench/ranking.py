"""`streamsense bench`: measurements printed side by side, never asserted by timed tests.

``ranking``: the cost of answering one recommendation request from a model trained on the
simulator's stream: scoring and ranking N candidates (vectorised), against River's own
``Ranker.rank`` (one ``predict_one`` per item) on the same model and candidates.
"""

from __future__ import annotations

import itertools
import statistics
import time

from agents.sim.reco_traffic import RecoTrafficSimulator
from online_models.reco_engine import RecoEngine
from schemas.records import Interaction, RecoRequest
from schemas.settings import Settings


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000.0)
    return out


def bench_ranking(candidates: int = 1000, requests: int = 300, train: int = 20_000, seed: int = 42) -> dict:
    """Train on ``train`` simulated interactions over ``candidates`` items, then time ``requests`` answers."""
    settings = Settings(seed=seed)
    engine = RecoEngine.from_settings(settings)
    sim = RecoTrafficSimulator(seed=seed, items=candidates)
    seen: dict[str, set[str]] = {}
    for ev in itertools.islice((e for e in sim.events() if e.kind == "interaction"), train):
        it = Interaction(**ev.payload)
        engine.learn(it, seen.setdefault(it.user_id, set()))
        seen[it.user_id].add(it.item_id)
    items = engine.recommender.catalogue[:candidates]
    users = itertools.cycle(list(seen)[:100])
    fast = _timed(lambda: engine.recommender.top_k(engine.pseudonyms.of(next(users)), items, 10), requests)
    trending = [(item, float(candidates - n)) for n, item in enumerate(items)]
    request_ids = itertools.count()

    def answer() -> None:
        user = next(users)
        rec = engine.recommend(RecoRequest(f"b{next(request_ids)}", user, 10, 0.0), seen[user], trending,
                               generated_at=0.0)
        strategies[rec.strategy] = strategies.get(rec.strategy, 0) + 1

    strategies: dict[str, int] = {}
    full = _timed(answer, requests)
    river = _timed(lambda: engine.recommender.mf.rank(next(users), set(items))[:10], max(20, requests // 10))
    result = {"candidates": len(items), "requests": requests,
              "streamsense_ms_p50": statistics.median(fast), "streamsense_ms_p99": sorted(fast)[int(.99 * len(fast))],
              "answer_strategies": strategies, "answer_ms_p50": statistics.median(full),
              "answer_ms_p99": sorted(full)[int(.99 * len(full))],
              "river_rank_ms_p50": statistics.median(river)}
    result["speedup"] = result["river_rank_ms_p50"] / result["streamsense_ms_p50"]
    return result


def print_ranking(result: dict) -> None:
    print(f"ranking {result['candidates']} candidates, top 10, {result['requests']} requests")
    print(f"  streamsense (vectorised)  p50 {result['streamsense_ms_p50']:.3f} ms"
          f"  p99 {result['streamsense_ms_p99']:.3f} ms")
    print(f"  whole answer (engine)     p50 {result['answer_ms_p50']:.3f} ms  p99 {result['answer_ms_p99']:.3f} ms"
          f"  strategies {result['answer_strategies']}")
    print(f"  river Ranker.rank         p50 {result['river_rank_ms_p50']:.3f} ms")
    print(f"  ratio                     {result['speedup']:.1f}x faster")
