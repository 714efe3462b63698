"""The fraud path of a worker: the transaction path (agents.transaction_path) and the label path
(agents.label_path) over one engine, one Redis store and one set of metrics.

Each path returns a typed ``FraudOutcome`` (agents.fraud_outcome); the agents turn it into Kafka
messages. The label horizon runs on the event time of the transactions decided here, so expiring
unlabelled decisions takes the transaction path's watermark.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

from agents.breaker import CircuitBreaker
from agents.experiment_arms import ExperimentArms
from agents.fraud_outcome import FraudOutcome
from agents.label_path import LabelPath
from agents.metrics import Metrics
from agents.stores.fraud import FraudStore
from agents.stores.keys import RedisKeys
from agents.transaction_path import TransactionPath
from online_models.engine import FraudEngine
from schemas.settings import Settings


class FraudProcessor:
    def __init__(self, settings: Settings, engine: FraudEngine, store: FraudStore,
                 clock: Callable[[], float] = time.time, metrics: Metrics | None = None,
                 breaker: CircuitBreaker | None = None, arms: ExperimentArms | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.store = store
        self.arms = arms or ExperimentArms(settings)
        self.labels = LabelPath(settings, engine, store, self.metrics, clock, self.arms)
        self.transactions = TransactionPath(settings, engine, store, self.labels, self.metrics, clock, breaker,
                                            arms=self.arms)

    @classmethod
    def on_redis(cls, redis: Redis, settings: Settings, engine: FraudEngine | None = None,
                 metrics: Metrics | None = None, arms: ExperimentArms | None = None) -> FraudProcessor:
        """The processor over ``redis`` with the settings' key layout; a fresh engine unless given."""
        return cls(settings, engine or FraudEngine.from_settings(settings),
                   FraudStore(redis, RedisKeys.from_settings(settings), settings), metrics=metrics, arms=arms)

    async def expire_unlabelled(self, limit: int = 1000) -> FraudOutcome:
        """Decisions unlabelled past the label horizon, learned as legitimate (agents.label_path)."""
        return await self.labels.expire_unlabelled(self.transactions.stats.watermark, limit)
