"""The worker's resources: one Redis client, the processors that use it, and the metrics they feed.

Created in ``on_start`` (never at import), closed in ``on_stop``.
"""

from __future__ import annotations

import logging

import faust
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agents.faults import Faults
from agents.fraud_processor import FraudProcessor
from agents.learner import Learner
from agents.lifecycle import ModelLifecycle
from agents.metrics import Metrics
from agents.reco_processor import RecoProcessor
from agents.stores.checkpoints import RedisCheckpoints
from online_models.engine import FraudEngine
from online_models.reco_engine import RecoEngine
from schemas.settings import Settings

log = logging.getLogger(__name__)


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
        self.metrics = Metrics()
        self.redis: Redis | None = None
        self.processor: FraudProcessor | None = None
        self.reco: RecoProcessor | None = None

    async def on_start(self) -> None:
        self.redis = Redis.from_url(self.settings.redis_url.get_secret_value(), socket_timeout=2.0,
                                    socket_connect_timeout=2.0, health_check_interval=10)
        self.processor = FraudProcessor.on_redis(self.redis, self.settings, self.engine, self.metrics)
        self.reco = RecoProcessor.on_redis(self.redis, self.settings, self.reco_engine, self.metrics)
        self.learner = Learner(self.settings, self.engine, self.metrics)
        self.lifecycle = ModelLifecycle(self.engine, RedisCheckpoints.on_redis(self.redis, self.settings), self.app)
        await self.lifecycle.restore()
        faults = Faults.from_env()  # None unless a reliability test asks for faults
        if faults is not None:
            faults.install(self)

    async def on_stop(self) -> None:
        if self.lifecycle is not None:
            try:
                await self.lifecycle.publish_if_learned()  # a clean stop loses nothing learned
            except (RedisError, OSError) as exc:
                log.warning("could not publish the last checkpoint: %s", exc)
        if self.redis is not None:
            await self.redis.aclose()

    async def redis_ok(self) -> bool:
        try:
            return self.redis is not None and bool(await self.redis.ping())
        except (RedisError, OSError):
            return False
