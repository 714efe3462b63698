"""The worker's resources: one Redis client, the processors that use it, and the metrics they feed.

Created in ``on_start`` (never at import), closed in ``on_stop``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import faust
from faust.exceptions import ConsumerNotStarted
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agents.clients import redis_client
from agents.experiment_arms import ExperimentArms
from agents.experiment_guard import ExperimentGuard
from agents.faults import Faults, stop_before_commit
from agents.fraud_outcome import FraudOutcome
from agents.fraud_processor import FraudProcessor
from agents.learner import LearnTopicReader, Learner, RecoLearner
from agents.lifecycle import RECO_ROLE, ModelLifecycle
from agents.messages import RawMessage
from agents.metrics import Metrics
from agents.reco_processor import RecoProcessor
from agents.rules_follower import RulesFollower
from agents.stores.checkpoints import RedisCheckpoints
from agents.stores.experiments import ExperimentStore
from agents.stores.keys import RedisKeys
from agents.stores.rules import RedisRuleSets
from agents.stores.trust import Epoch, EvictionReport, eviction_policy
from online_models.engine import FraudEngine
from online_models.reco_engine import RecoEngine
from schemas.settings import Settings

log = logging.getLogger(__name__)
B, R = TypeVar("B"), TypeVar("R")
TRUST_INTERVAL_S = 2.0  # how often the epoch and the eviction policy are read


class Runtime(faust.Service):
    def __init__(self, settings: Settings, app: faust.App, fraud_engine: FraudEngine, reco_engine: RecoEngine,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.app = app
        self.engine = fraud_engine  # learns when this worker is the learner, else follows its checkpoints
        self.reco_engine = reco_engine
        self.learner: Learner | None = None
        self.lifecycle: ModelLifecycle | None = None
        self.reco_learner: RecoLearner | None = None
        self.reco_lifecycle: ModelLifecycle | None = None  # the recommender's, like the fraud model's
        self.rules: RulesFollower | None = None
        self.metrics = Metrics()
        self.redis: Redis | None = None
        self.processor: FraudProcessor | None = None
        self.reco: RecoProcessor | None = None
        self.arms: ExperimentArms | None = None
        self.guard: ExperimentGuard | None = None
        self.epoch: Epoch | None = None
        self.eviction: EvictionReport | None = None
        self._claimed: tuple[int, tuple[int, ...]] | None = None  # (generation, partitions) last claimed
        self.models_loaded = asyncio.Event()  # the registry was read at start, or found unreachable

    async def on_start(self) -> None:
        self.redis = redis_client(self.settings)
        checkpoints = RedisCheckpoints.on_redis(self.redis, self.settings)
        experiments = ExperimentStore.on_redis(self.redis, self.settings)
        self.arms = ExperimentArms(self.settings, experiments, checkpoints, self.metrics)
        self.guard = ExperimentGuard(self.settings, experiments, self.arms, self.metrics)
        self.processor = FraudProcessor.on_redis(self.redis, self.settings, self.engine, self.metrics, self.arms)
        self.reco = RecoProcessor.on_redis(self.redis, self.settings, self.reco_engine, self.metrics, self.arms)
        self.learner = Learner(self.settings, self.engine, self.metrics, LearnTopicReader(self.settings))
        self.lifecycle = ModelLifecycle(self.engine, self.learner, checkpoints)
        self.reco_learner = RecoLearner(self.settings, self.reco_engine, self.metrics, LearnTopicReader(self.settings))
        self.reco_lifecycle = ModelLifecycle(self.reco_engine, self.reco_learner, checkpoints, RECO_ROLE)
        self.rules = RulesFollower(self.engine, RedisRuleSets.on_redis(self.redis, self.settings), self.metrics)
        self.epoch = Epoch(self.redis, RedisKeys.from_settings(self.settings), self.settings.data_dir)
        # Test hooks before the first await: the agents may take a batch as soon as this yields.
        faults = Faults.from_env()  # None unless a reliability test asks for faults
        if faults is not None:
            faults.install(self)
        stop_before_commit(self.processor.store)  # nothing unless a reliability test asks for a zombie
        try:
            await self.check_redis_trust()
            for lifecycle in self.lifecycles():
                await lifecycle.restore()
            await self.rules.follow()  # decide with the published rules from the first event
        except (RedisError, OSError) as exc:  # start anyway: decide degraded, restore when Redis answers
            log.error("Redis unreachable at start (%s): serving a fresh model, decisions degraded; the "
                      "checkpoint is restored as soon as Redis answers", exc)
        finally:
            self.models_loaded.set()

    async def on_stop(self) -> None:
        for lifecycle in self.lifecycles():
            try:
                await lifecycle.publish_if_learned()  # a clean stop loses nothing learned
            except (RedisError, OSError) as exc:
                log.warning("could not publish the last %s checkpoint: %s", lifecycle.role, exc)
        if self.redis is not None:
            await self.redis.aclose()

    def after_restore(self, handle: Callable[[B], Awaitable[R]]) -> Callable[[B], Awaitable[R]]:
        """``handle`` once the models are restored: the agents may take a batch before on_start ends, and a
        restarted worker must not decide, answer or learn on the fresh models it begins with."""
        async def run(batch: B) -> R:
            await self.models_loaded.wait()
            return await handle(batch)
        return run

    def lifecycles(self) -> list[ModelLifecycle]:
        """The fraud model's and the recommender's (once started)."""
        return [lc for lc in (self.lifecycle, self.reco_lifecycle) if lc is not None]

    async def learn(self, batch: list[RawMessage]) -> FraudOutcome:
        """A batch of the learn topic, to both learners (each takes its own kind of example)."""
        outcome = await self.learner.on_examples(batch)  # type: ignore[union-attr]
        outcome.refused.extend((await self.reco_learner.on_examples(batch)).refused)  # type: ignore[union-attr]
        return outcome

    @faust.Service.timer(TRUST_INTERVAL_S)
    async def _recheck_redis(self) -> None:
        try:
            await self.check_redis_trust()
            await self.claim_partitions()
        except (RedisError, OSError) as exc:  # Redis down: the breaker and /ready report that
            log.debug("cannot check Redis's epoch and eviction policy or claim partitions: %s", exc)

    async def claim_partitions(self) -> None:
        """Record this worker as the owner of its transaction partitions in the current generation:
        a worker that read them in an older one can no longer commit (agents.stores.fraud). Run on
        every assignment, and again every few seconds in case Redis was down then."""
        topic = self.settings.topics.transactions
        try:
            assigned = self.app.consumer.assignment()
        except ConsumerNotStarted:
            return
        claim = (self.app.consumer_generation_id, tuple(sorted(tp.partition for tp in assigned if tp.topic == topic)))
        if claim[1] and claim != self._claimed and self.processor is not None:
            await self.processor.store.claim_partitions(topic, claim[1], claim[0])
            self._claimed = claim

    async def check_redis_trust(self) -> None:
        """Read Redis's eviction policy and epoch (agents.stores.trust); report what is unsafe."""
        eviction = await eviction_policy(self.redis)
        if eviction != self.eviction and eviction.warning():
            log.error("!!! %s !!!", eviction.warning())
        self.eviction = eviction
        self.metrics.redis_eviction_unsafe.set(0.0 if eviction.safe else 1.0)
        if await self.epoch.check():
            self.metrics.redis_data_loss.inc()

    def redis_warnings(self) -> list[str]:
        """What makes the decision guard untrustworthy right now (``/ready`` lists it)."""
        found = [self.eviction.warning()] if self.eviction is not None else []
        if self.epoch is not None and self.epoch.last_loss:
            found.append(f"{self.epoch.last_loss} (seen {self.epoch.losses} time(s))")
        return [w for w in found if w]

    async def redis_ok(self) -> bool:
        try:
            return self.redis is not None and bool(await self.redis.ping())
        except (RedisError, OSError):
            return False
