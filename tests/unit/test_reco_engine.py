"""The recommendation engine on the simulator's taste-driven stream, and its strategies."""

from __future__ import annotations

import itertools
import json

import pytest

from agents.sim.reco_traffic import RecoTrafficSimulator
from online_models.reco_engine import RecoEngine
from online_models.reco_replay import RankingScores, RecoReplay
from schemas.records import Interaction, RecoRequest
from schemas.settings import Settings
from schemas.validation import INTERACTIONS, UNKEYED, InputRules, decode


@pytest.mark.slow
def test_personal_hit_rate_at_10_is_at_least_twice_the_popularity_baseline() -> None:
    settings = Settings(seed=42)
    replay = RecoReplay(RecoEngine.from_settings(settings), settings.reco_trending_half_life_s)
    rates = RankingScores(k=10)
    stream = (e for e in RecoTrafficSimulator(seed=42).events() if e.kind == "interaction")
    for ev in itertools.islice(stream, 20_000):
        it = decode(INTERACTIONS, json.dumps(ev.payload).encode(), rules=InputRules.from_settings(settings),
                    now=ev.ts, key=UNKEYED).record
        replay.evaluate(it, rates)
        replay.learn(it)
    personal, popular = rates.hit_rate("personal"), rates.hit_rate("popular")
    print(f"prequential hit-rate@10 over {rates.evaluated:,} interactions: personal {personal:.4f}, "
          f"popular {popular:.4f}, ratio {personal / popular:.2f}")
    assert rates.evaluated > 10_000
    assert personal >= 2 * popular


def engine_with_history() -> tuple[RecoEngine, list[tuple[str, float]]]:
    engine = RecoEngine(explore_share=0.0)
    for _ in range(30):
        for item in ("a", "b", "c"):
            engine.learn(Interaction("e", 0.0, "ann", item, "purchase"), {"a", "b", "c"})
        for item in ("x", "y", "z", "w"):
            engine.learn(Interaction("e", 0.0, "bob", item, "view"), {"x", "y", "z", "w"})
    return engine, [("x", 9.0), ("y", 8.0), ("a", 7.0), ("z", 6.0), ("b", 5.0), ("w", 4.0), ("c", 3.0), ("d", 2.0)]


def test_an_unknown_user_gets_the_popular_list_without_excluded_items() -> None:
    engine, trending = engine_with_history()
    rec = engine.recommend(RecoRequest("r1", "newcomer", 3, 0.0, ("y",)), set(), trending, generated_at=1.0)
    assert rec.strategy == "popular" and [i.item_id for i in rec.items] == ["x", "a", "z"]


def test_a_known_user_gets_personal_items_never_already_seen() -> None:
    engine, trending = engine_with_history()
    seen = {"a", "b", "c"}
    rec = engine.recommend(RecoRequest("r2", "ann", 3, 0.0), seen, trending, generated_at=1.0)
    assert rec.strategy == "personal"
    assert not seen & {i.item_id for i in rec.items} and len(rec.items) == 3
    assert rec.model == "biased-mf" and rec.model_version.startswith("1.")


def test_exploration_is_a_logged_seeded_share() -> None:
    engine, trending = engine_with_history()
    engine.explore_share = 0.5
    answers = [engine.recommend(RecoRequest(f"q{i}", "ann", 2, 0.0), set(), trending * 30, generated_at=1.0)
               for i in range(200)]
    explored = [a for a in answers if a.strategy == "explore"]
    assert 60 < len(explored) < 140
    again = engine.recommend(RecoRequest(explored[0].request_id, "ann", 2, 0.0), set(), trending * 30,
                             generated_at=1.0)
    assert again.strategy == "explore" and again.items == explored[0].items


def test_a_replayed_follower_serves_the_model_as_of_its_last_checkpoint() -> None:
    replay = RecoReplay(RecoEngine(), 3600.0, follower_every=2)
    follower = next(f"u{n}" for n in range(50) if replay.serving(f"u{n}") is not replay.engine)
    leader = next(f"u{n}" for n in range(50) if replay.serving(f"u{n}") is replay.engine)
    replay.learn(Interaction("i0", 0.0, follower, "a", "purchase"))
    assert replay.engine.knows(follower)
    assert not replay.serving(follower).knows(follower)  # its copy predates the interaction
    replay.learn(Interaction("i1", 1.0, leader, "b", "purchase"))  # the second: a checkpoint
    assert replay.serving(follower).knows(follower) and replay.serving(leader) is replay.engine
