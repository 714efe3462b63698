"""Publishing and following fraud-model checkpoints (the registry is agents.stores.checkpoints).

- On start, every worker restores the newest verified checkpoint (a fresh model when there is none).
- The learner (agents.learner) publishes its model every ``checkpoint_interval_s`` when it has
  learned, stamped with the offsets it has read, and on a clean stop.
- Every worker follows the ``latest`` pointer (1 s): a version it did not publish itself -- the
  learner's, or one an operator promoted or rolled back to -- is verified and loaded, and learning
  (if this worker learns) goes on from there.
"""

from __future__ import annotations

import logging
import time

import faust
from faust.exceptions import ConsumerNotStarted

from agents.stores.checkpoints import RedisCheckpoints
from online_models.checkpoints import CheckpointRejected
from online_models.engine import FraudEngine

log = logging.getLogger(__name__)
ROLE = "fraud"


def read_offsets(app: faust.App) -> dict[str, int]:
    try:
        consumer = app.consumer
        return {f"{tp.topic}/{tp.partition}": offset for tp in consumer.assignment()
                if (offset := consumer._read_offset.get(tp)) is not None}  # noqa: SLF001 - see agents.web
    except ConsumerNotStarted:  # stopping before the consumer ever started: nothing read yet
        return {}


class ModelLifecycle:
    def __init__(self, engine: FraudEngine, store: RedisCheckpoints, app: faust.App) -> None:
        self.engine = engine  # the runtime's: loading a checkpoint replaces the models it serves
        self.store = store
        self.app = app
        self.serving_version: int | None = None  # the checkpoint version loaded or published last
        self.mine: set[int] = set()  # versions this worker published
        self.published_model = engine.model_version

    async def restore(self) -> None:
        found = await self.store.restore(ROLE)
        if found is None:
            log.info("no valid %s checkpoint: starting from a fresh model", ROLE)
            return
        self.engine.load(found[0])
        self.serving_version = found[1]["version"]
        self.published_model = self.engine.model_version

    async def publish_if_learned(self) -> None:
        engine = self.engine
        if engine.model_version == self.published_model:
            return
        header = {"model_version": engine.model_version, "offsets": read_offsets(self.app), "created_at": time.time()}
        version = await self.store.save(ROLE, engine.models(), header)
        self.mine.add(version)
        self.serving_version, self.published_model = version, engine.model_version
        log.info("published %s checkpoint v%d (model %s)", ROLE, version, engine.model_version)

    async def follow(self) -> None:
        latest = await self.store.latest(ROLE)
        if latest is None or latest == self.serving_version or latest in self.mine:
            return
        try:
            models, header = await self.store.load(ROLE, latest)
        except CheckpointRejected as exc:
            log.error("refused checkpoint %s v%d: %s; serving v%s", ROLE, latest, exc, self.serving_version)
            self.serving_version = latest  # do not retry the same bad version every second
            return
        self.engine.load(models)
        self.serving_version, self.published_model = latest, self.engine.model_version
        log.info("serving %s checkpoint v%d (model %s)", ROLE, latest, header.get("model_version"))

