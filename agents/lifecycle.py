"""Publishing and following model checkpoints: the fraud model's and the recommender's, one
lifecycle each under its own role (the registry is agents.stores.checkpoints).

- On start, every worker restores the newest checkpoint that verifies and loads (a fresh model when
  there is none). Redis down at start: the worker starts anyway on the fresh model (its decisions are
  degraded) and restores as soon as Redis answers.
- The learner (agents.learner) publishes its model every ``checkpoint_interval_s`` when it has
  learned, stamped with the learn-topic offsets it has learned through, and on a clean stop.
- Every worker follows the ``latest`` pointer (1 s): a version it did not publish itself -- the
  learner's, or one an operator promoted or rolled back to -- is verified and loaded, and learning
  (if this worker learns) goes on from there.
- Where learning goes on from: a checkpoint that is the newest of its lineage carries the learner's
  position, and the learner resumes right after it (what the model learned after it but never
  published is learned again, what it already holds is not). An operator's promote or rollback
  keeps the learner where it is: the examples in between are deliberately not learned again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from agents.learner import Learner
from agents.stores.checkpoints import RedisCheckpoints
from online_models.checkpoints import CheckpointRejected
from online_models.engine import FraudEngine
from online_models.reco_engine import RecoEngine

log = logging.getLogger(__name__)
ROLE = "fraud"
RECO_ROLE = "reco"  # the recommender: the same lifecycle, its own checkpoints (agents.learner)


class ModelLifecycle:
    def __init__(self, engine: FraudEngine | RecoEngine, learner: Learner | None, store: RedisCheckpoints,
                 role: str = ROLE) -> None:
        self.role = role
        self.engine = engine  # the worker's: loading a checkpoint replaces the models it serves
        self.learner = learner  # positioned by the checkpoints it loads, stamps the ones it publishes
        self.store = store
        self.restored = False  # the registry was read once (Redis may be down when the worker starts)
        self.serving_version: int | None = None  # the checkpoint version loaded or published last
        self.mine: set[int] = set()  # versions this worker published
        self.published_model = engine.model_version
        # Publishing and following one at a time: a follow that read the pointer while a publish was
        # between its save and marking the version its own took it for another's and loaded it again.
        self._one_at_a_time = asyncio.Lock()

    async def restore(self) -> None:
        newest = max(await self.store.versions(self.role), default=None)
        found = await self.store.restore(self.role, lambda models, header: self._install(models, header, newest))
        self.restored = True
        if found is None:
            log.info("no valid %s checkpoint: starting from a fresh model", self.role)

    def _install(self, models: object, header: dict, newest: int | None) -> None:
        """Serve ``models``; the learner resumes after the checkpoint's offsets when it is the newest."""
        engine = self.engine
        previous = engine.models()
        try:
            engine.load(models)  # type: ignore[arg-type]
        except (KeyError, TypeError, AttributeError) as exc:  # not the models this code expects
            engine.load(previous)
            raise CheckpointRejected(f"verifies but cannot be installed: {exc!r}") from exc
        self.serving_version, self.published_model = header["version"], engine.model_version
        if header["version"] == newest and self.learner is not None:
            self.learner.resume_after(header.get("offsets") or {})

    async def publish_if_learned(self) -> None:
        async with self._one_at_a_time:
            await self._publish_if_learned()

    async def _publish_if_learned(self) -> None:
        engine = self.engine
        # Never before the registry was read: a fresh model published then would supersede the lineage.
        if not self.restored or engine.model_version == self.published_model or self.learner is None:
            return
        header = {"model_version": engine.model_version, "offsets": self.learner.position(),
                  "created_at": time.time()}
        try:
            version = await self.store.save(self.role, engine.models(), header)
        except CheckpointRejected as exc:  # a non-finite parameter: never published, workers keep theirs
            log.error("not publishing %s checkpoint (model %s): %s", self.role, engine.model_version, exc)
            return
        self.mine.add(version)
        self.serving_version, self.published_model = version, engine.model_version
        log.info("published %s checkpoint v%d (model %s)", self.role, version, engine.model_version)

    async def follow(self) -> None:
        async with self._one_at_a_time:
            await self._follow()

    async def _follow(self) -> None:
        if not self.restored:
            await self.restore()
            return
        latest = await self.store.latest(self.role)
        if latest is None or latest == self.serving_version or latest in self.mine:
            return
        newest = max(await self.store.versions(self.role), default=None)
        try:
            models, header = await self.store.load(self.role, latest)
            self._install(models, header, newest)
        except CheckpointRejected as exc:
            log.error("refused checkpoint %s v%d: %s; serving v%s", self.role, latest, exc, self.serving_version)
            self.serving_version = latest  # do not retry the same bad version every second
            return
        log.info("serving %s checkpoint v%d (model %s)", self.role, latest, header.get("model_version"))
