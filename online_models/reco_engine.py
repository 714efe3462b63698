"""The recommendation engine: learn from interactions, answer requests with a strategy.

- personal: the user has enough history (``reco_min_history``) and the model knows them: the
  model ranks the candidate set (trending items), seen and excluded items removed, topped up from
  the popular list if short;
- popular: an unknown or thin user gets the trending list, seen and excluded items removed;
- explore: a seeded share of answers (``reco_explore_share``) samples from the trending tail, so
  new items get a chance; each such answer says so in its strategy.

The worker, the replay and the evaluate command all go through this class.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from online_models.recommender import OnlineRecommender
from schemas.keyring import Pseudonyms
from schemas.records import Interaction, RecoItem, RecoRequest, Recommendation
from schemas.settings import Settings
from streams.popularity import interaction_weight

MODEL_NAME = "biased-mf"
MODEL_GENERATION = 1
CANDIDATES = 1000  # trending items the personal ranker scores per request
EXPLORE_TAIL = 200  # the explore strategy samples among trending items ranked k .. k + EXPLORE_TAIL
LIKED_RATING = 3.0  # on a 1-5 scale


def learn_repeats(weight: float) -> int:
    """How many times an interaction of this weight is learned: 1 for a view, 3 for a purchase.

    >>> [learn_repeats(w) for w in (1.0, 2.0, 3.0, 5.0)]
    [1, 2, 2, 3]
    """
    return max(1, min(3, round(weight ** 0.7)))


class RecoEngine:
    """
    Parameters
    ----------
    min_history
        Interactions a user needs before the personal strategy answers them.
    explore_share
        Share of answers that explore the trending tail.
    seed
        Seeds the recommender and the exploration draws.
    recommender
        The model (a fresh one by default).
    pseudonyms
        How the model names users: by keyed pseudonym, so that its checkpoints (in Redis) hold no user
        id (the settings' key by default).
    """

    def __init__(self, *, min_history: int = 3, explore_share: float = 0.05, seed: int = 42,
                 recommender: OnlineRecommender | None = None, pseudonyms: Pseudonyms | None = None) -> None:
        self.min_history = min_history
        self.explore_share = explore_share
        self.seed = seed
        self.recommender = recommender or OnlineRecommender(seed=seed)
        self.pseudonyms = pseudonyms or Settings().pseudonyms()

    @classmethod
    def from_settings(cls, settings: Settings, **models) -> RecoEngine:
        """The engine the settings describe; ``models`` (recommender) replace a fresh one."""
        return cls(min_history=settings.reco_min_history, explore_share=settings.reco_explore_share,
                   seed=settings.seed, pseudonyms=settings.pseudonyms(), **models)

    def models(self) -> dict:
        return {"recommender": self.recommender}

    def load(self, models: dict) -> None:
        self.recommender = models["recommender"]

    @property
    def model_version(self) -> str:
        return f"{MODEL_GENERATION}.{self.recommender.n_learned}"

    def learn(self, interaction: Interaction, seen: set[str]) -> None:
        """Learn one interaction; ``seen`` are the user's items before it (not sampled as negatives).

        Stronger intent is learned more often (a purchase three times, a view once); an explicit
        rating below ``LIKED_RATING`` teaches that the user rejected the item.
        """
        it = interaction
        weight = interaction_weight(it.kind, it.rating)
        chosen = it.kind != "rating" or weight >= LIKED_RATING
        user = self.pseudonyms.of(it.user_id)
        for _ in range(learn_repeats(weight) if chosen else 1):
            self.recommender.learn_one(user, it.item_id, chosen, seen=seen | {it.item_id})

    def knows(self, user_id: str) -> bool:
        """Whether the recommender has learned this user (it names users by pseudonym)."""
        return self.recommender.knows(self.pseudonyms.of(user_id))

    def rank(self, user_id: str, k: int, exclude: set[str], seen_count: int,
             trending: Sequence[tuple[str, float]]) -> tuple[str, list[tuple[str, float]]]:
        """(strategy, items) without exploration: personal when the user is known enough, else popular."""
        popular = [(item, score) for item, score in trending if item not in exclude]
        if seen_count >= self.min_history and self.knows(user_id):
            candidates = [i for i, _ in trending[:CANDIDATES]]
            items = self.recommender.top_k(self.pseudonyms.of(user_id), candidates, k, exclude)
            chosen = {i for i, _ in items}
            items += [(i, s) for i, s in popular if i not in chosen][: k - len(items)]
            return "personal", items
        return "popular", popular[:k]

    def recommend(self, request: RecoRequest, seen: set[str], trending: Sequence[tuple[str, float]], *,
                  generated_at: float) -> Recommendation:
        exclude = seen | set(request.exclude)
        # Seeded by the request id: a redelivered request explores the same way.
        rng = random.Random(int.from_bytes(hashlib.blake2b(request.request_id.encode(), digest_size=8).digest(),
                                           "big") ^ self.seed)
        tail = [i for i, _ in trending[request.k: request.k + EXPLORE_TAIL] if i not in exclude]
        if rng.random() < self.explore_share:
            strategy, items = "explore", [(i, 0.0) for i in rng.sample(tail, min(request.k, len(tail)))]
        else:
            strategy, items = self.rank(request.user_id, request.k, exclude, len(seen), trending)
        return Recommendation(
            request_id=request.request_id, user_id=request.user_id,
            items=tuple(RecoItem(i, round(s, 6)) for i, s in items), strategy=strategy, model=MODEL_NAME,
            model_version=self.model_version, latency_ms=0.0, generated_at=generated_at,
            propensity=self.propensity(strategy, [i for i, _ in items], tail, request.k) or None)

    def propensity(self, strategy: str, items: list[str], tail: list[str], k: int) -> float:
        """The probability that this engine answers with exactly ``items`` (in order): the ranking's
        share for a ranked list, plus the chance that exploring draws the same ordered sample of the
        ``tail`` (all an explored list has).

        >>> engine = RecoEngine(explore_share=0.1)
        >>> engine.propensity("personal", ["a", "b"], ["x", "y", "z"], 2)
        0.9
        >>> round(engine.propensity("explore", ["x", "y"], ["x", "y", "z"], 2), 6)  # 0.1 / (3 * 2)
        0.016667
        >>> engine.propensity("popular", ["a", "b", "c"], ["x"], 3)  # longer than the tail: ranked only
        0.9
        """
        ranked = 0.0 if strategy == "explore" else 1.0 - self.explore_share
        if not (len(items) == min(k, len(tail)) and set(items) <= set(tail)):
            return ranked  # no draw of the tail gives this list (a ranked list longer than the tail, say)
        p = 1.0
        for position in range(len(items)):
            p /= len(tail) - position
        return ranked + self.explore_share * p
