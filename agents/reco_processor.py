"""The recommendation path for one batch: interactions teach the model, requests get answers.

Interactions are claimed here and forwarded to the recommender's one learner (agents.learner):
every worker serves that learner's checkpoints, so a user's answers do not depend on which
worker consumed their interactions.

Outcome per input message: an interaction updates state (or is a dead letter; one of a kind this
version does not know is counted, not learned); a request gets exactly one recommendation (or is a
dead letter). A redelivered offset is recognised by its claim:
the interaction is not learned twice, the request is answered again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agents.experiment_arms import ExperimentArms
from agents.fraud_outcome import learn_messages
from agents.intake import Intake
from agents.messages import Emit, RawMessage, dead_letter
from agents.metrics import Metrics
from agents.stores.keys import RedisKeys
from agents.stores.reco import RecoStore
from online_models.reco_engine import MODEL_NAME, RecoEngine
from schemas.errors import InvalidEvent
from schemas.internal_records import InteractionExample
from schemas.records import INTERACTION_KINDS, RecoRequest, Recommendation
from schemas.settings import Settings
from schemas.validation import INTERACTIONS, RECO_REQUESTS
from streams.popularity import live_buckets, reader_clock, trending, trending_weight

log = logging.getLogger(__name__)


MAX_LISTED = 100_000  # users whose last list refresh is remembered


class DuplicateMessage(InvalidEvent):
    """An interaction or request id already carried by another input offset."""


@dataclasses.dataclass
class RecoStats:
    interactions: int = 0
    requests: int = 0
    dead_letters: int = 0
    by_strategy: dict = dataclasses.field(default_factory=dict)
    watermark: float = 0.0


class RecoProcessor:
    def __init__(self, settings: Settings, engine: RecoEngine, store: RecoStore,
                 clock: Callable[[], float] = time.time, metrics: Metrics | None = None,
                 arms: ExperimentArms | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.arms = arms or ExperimentArms(settings)  # which strategy answers a user in an experiment
        self.store = store
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.stats = RecoStats()
        self.intake = Intake(settings, self.metrics, clock)
        self.trending: list[tuple[str, float]] = []
        self._listed: dict[str, float] = {}  # user -> when their cached list was last ranked

    @classmethod
    def on_redis(cls, redis: Redis, settings: Settings, engine: RecoEngine | None = None,
                 metrics: Metrics | None = None, arms: ExperimentArms | None = None) -> RecoProcessor:
        """The processor over ``redis`` with the settings' key layout; a fresh engine unless given."""
        return cls(settings, engine or RecoEngine.from_settings(settings),
                   RecoStore(redis, RedisKeys.from_settings(settings), settings), metrics=metrics, arms=arms)

    def _decode(self, messages, shape, emits: list[Emit]) -> list:
        valid, refused = self.intake.split(shape, messages)
        for r in refused:
            r.count(self.metrics)
            emits.append(r.emit(self.settings))
        return valid

    async def _claim(self, kind: str, valid: list, message_id, emits: list[Emit]) -> list:
        """Keep first sightings; a redelivery is kept with ``fresh=False``; other duplicates are dead letters."""
        previous = await self.store.claim(kind, [(message_id(r), m.source) for m, r in valid])
        return self._sort_claims(kind, valid, message_id, previous, emits)

    def _sort_claims(self, kind: str, valid: list, message_id, previous: list[str | None], emits: list[Emit]) -> list:
        kept, here = [], set()
        for (msg, record), before in zip(valid, previous, strict=True):
            if (before is None or before == msg.source) and message_id(record) not in here:
                here.add(message_id(record))
                kept.append((msg, record, before is None))
                continue
            exc = DuplicateMessage("duplicate_id", None, f"{kind} id {message_id(record)!r} was already "
                                   f"received (from {before or 'this batch'})")
            emits.append(dead_letter(self.settings, msg, "dedupe", exc, self.clock(), self.metrics))
        return kept

    async def on_interactions(self, messages: Sequence[RawMessage]) -> list[Emit]:
        emits: list[Emit] = []
        valid = self._decode(messages, INTERACTIONS, emits)
        seen = await self.store.seen(it.user_id for _, it in valid)  # as they were before this batch
        # Claims and their effects in one script (agents.stores.reco). A kind this version does not
        # know could mean interest or its opposite ("return", "dislike"): claimed (a redelivery is
        # recognised) and counted, never learned, no effect.
        previous = await self.store.claim_interactions(self._effects(valid, seen))
        claimed = [(m, it) for m, it, fresh in self._sort_claims("i", valid, lambda it: it.event_id, previous, emits)
                   if fresh]
        kept = [(m, it) for m, it in claimed if it.kind in INTERACTION_KINDS]
        self.metrics.events.labels(self.settings.topics.interactions, "unknown_kind").inc(len(claimed) - len(kept))
        examples = []
        for _, it in kept:
            # To the one learner (agents.learner.RecoLearner), with the user's items before it.
            examples.append(InteractionExample(it, tuple(sorted(seen.setdefault(it.user_id, set())))))
            seen[it.user_id].add(it.item_id)
            self.stats.watermark = max(self.stats.watermark, it.ts)
        emits.extend(learn_messages(self.settings, examples))
        if kept and not self.trending:
            await self._refresh_quietly()
        k, now = self.settings.reco_default_k, self.clock()
        lists = {user: self.engine.rank(user, k, seen[user], len(seen[user]), self.trending)[1]
                 for user in {it.user_id for _, it in kept} if self._list_due(user, now)}
        await self.store.record_lists(lists)
        self.stats.interactions += len(kept)
        self.metrics.events.labels(self.settings.topics.interactions, "learned").inc(len(kept))
        self.metrics.model_serving(MODEL_NAME, self.engine.model_version)
        self.stats.dead_letters += sum(e.topic == self.settings.topics.dead_letters for e in emits)
        return emits

    @staticmethod
    def _effects(valid: list, seen: dict[str, set[str]]) -> list:
        """(id, source, (user, item, event ts, popularity weight) or None) per interaction; an item
        the user had already seen adds nothing to popularity (one user's share is bounded)."""
        seen_now = {user: set(items) for user, items in seen.items()}
        out = []
        for msg, it in valid:
            if it.kind not in INTERACTION_KINDS:
                out.append((it.event_id, msg.source, None))
                continue
            user_seen = seen_now.setdefault(it.user_id, set())
            out.append((it.event_id, msg.source,
                        (it.user_id, it.item_id, it.ts, trending_weight(it.kind, it.rating, it.item_id in user_seen))))
            user_seen.add(it.item_id)
        return out

    def _list_due(self, user_id: str, now: float) -> bool:
        """Whether the user's cached list is older than ``reco_list_refresh_s`` (and so is re-ranked now)."""
        interval = self.settings.reco_list_refresh_s
        last = self._listed.get(user_id)
        if last is not None and now - last < interval:
            return False
        if len(self._listed) >= MAX_LISTED:  # bounded: forget users whose lists are due anyway
            self._listed = {u: t for u, t in self._listed.items() if now - t < interval}
        self._listed[user_id] = now
        return True

    async def on_requests(self, messages: Sequence[RawMessage]) -> list[Emit]:
        started = self.clock()
        emits: list[Emit] = []
        valid = self._decode(messages, RECO_REQUESTS, emits)
        kept = await self._claim("q", valid, lambda r: r.request_id, emits)
        seen = await self._seen_or_empty([r.user_id for _, r, _ in kept])
        self.stats.dead_letters += len(emits)
        for _, request, _ in kept:
            self.stats.watermark = max(self.stats.watermark, request.ts)
        if kept and not self.trending:
            await self._refresh_quietly()
        for msg, request, _ in kept:
            rec = self._answer(request, seen.get(request.user_id, set()), started, msg.topic)
            emits.append(Emit(self.settings.topics.recommendations, request.user_id.encode(), rec.to_json()))
            if msg.timestamp:
                self.metrics.end_to_end.labels("reco").observe(max(self.clock() - msg.timestamp, 0.0))
        return emits

    async def recommend_now(self, request: RecoRequest) -> Recommendation:
        """A request from the HTTP API: answered like one from reco-requests, returned instead of
        emitted, and not claimed (a GET may be repeated freely)."""
        started = self.clock()
        seen = await self._seen_or_empty([request.user_id])
        if not self.trending:
            await self._refresh_quietly()
        return self._answer(request, seen.get(request.user_id, set()), started, "api")

    async def _seen_or_empty(self, user_ids: list[str]) -> dict[str, set[str]]:
        try:
            return await self.store.seen(user_ids)
        except RedisError as exc:  # answer anyway; seen items cannot be excluded
            log.warning("redis unavailable, answering %d requests without seen items: %s", len(user_ids), exc)
            self.metrics.redis_errors.labels("seen").inc()
            return {}

    def _answer(self, request: RecoRequest, seen: set[str], started: float, source: str) -> Recommendation:
        engine, experiment, arm = self.arms.reco(self.engine, request.user_id)
        rec = engine.recommend(request, seen, self.trending, generated_at=self.clock())
        rec = dataclasses.replace(rec, latency_ms=(self.clock() - started) * 1000.0, arm=arm,
                                  experiment=None if experiment is None else experiment.experiment_id)
        self.arms.answered(rec)
        self.stats.requests += 1
        self.stats.by_strategy[rec.strategy] = self.stats.by_strategy.get(rec.strategy, 0) + 1
        self.metrics.recommendations.labels(rec.strategy).inc()
        self.metrics.events.labels(source, "answered").inc()
        self.metrics.processing.labels("reco").observe(rec.latency_ms / 1000.0)
        return rec

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh_trending()
        except RedisError as exc:
            log.warning("no trending list yet and Redis unavailable: %s", exc)

    async def refresh_trending(self) -> None:
        """Merge the recent popularity buckets (all workers') into the ranked list answers use."""
        now = reader_clock(self.stats.watermark, self.clock(), self.settings.max_future_s)
        half_life = self.settings.reco_trending_half_life_s
        read_at = time.time()
        buckets = await self.store.popularity(live_buckets(now, half_life))
        self.trending = trending(buckets, now, half_life)
        self.metrics.trending_read.set(read_at)
