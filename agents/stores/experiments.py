"""Experiments in Redis, shared by every worker and the ``streamsense experiments`` command.

- the registry: one hash, experiment id -> the experiment as stated (JSON). Every worker reads it
  each second (agents.experiment_arms). A change is a compare-and-set on the one field (WATCH, one
  key, so also within one Redis Cluster slot): two workers judging the same guardrail at once stop
  an experiment once, and a command never overwrites a ramp it did not see;
- outcomes per arm: one hash of counters per experiment (``arm:counter``), incremented by every
  worker, and per arm a capped list of the newest labelled scores (for ROCAUC and its interval).
  Counters are kept for ``EXPERIMENT_TTL_S`` after their last change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.exceptions import WatchError

from agents.stores.keys import RedisKeys
from online_models.experiments import ARMS, Experiment
from schemas.settings import Settings

EXPERIMENT_TTL_S = 30 * 86400
SCORES_KEPT = 5000  # labelled scores per arm kept for ROCAUC


class ExperimentConflict(RuntimeError):
    """The experiment changed since it was read (or one is already running for that model)."""


class ExperimentStore:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self.redis = redis
        self.keys = keys

    @classmethod
    def on_redis(cls, redis: Redis, settings: Settings) -> ExperimentStore:
        return cls(redis, RedisKeys.from_settings(settings))

    async def all(self) -> list[Experiment]:
        """Every experiment kept, oldest first."""
        raw = await self.redis.hgetall(self.keys.experiments())
        return sorted((Experiment.from_dict(json.loads(v)) for v in raw.values()), key=lambda e: e.started_at)

    async def get(self, experiment_id: str) -> Experiment | None:
        raw = await self.redis.hget(self.keys.experiments(), experiment_id)
        return None if raw is None else Experiment.from_dict(json.loads(raw))

    async def start(self, experiment: Experiment) -> None:
        """Add ``experiment``; ExperimentConflict if one is already running on the same model."""
        await self._write(experiment.experiment_id, None, experiment, model=experiment.model)

    async def replace(self, old: Experiment, new: Experiment) -> None:
        """``new`` in place of ``old``; ExperimentConflict if the stored one is no longer ``old``."""
        await self._write(old.experiment_id, old, new)

    async def remove(self, experiment: Experiment) -> None:
        """Forget ``experiment`` (a start that could not be published); ExperimentConflict if it changed."""
        await self._write(experiment.experiment_id, experiment, None)

    async def _write(self, experiment_id: str, expected: Experiment | None, new: Experiment | None,
                     model: str | None = None) -> None:
        key = self.keys.experiments()
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                stored = {k.decode() if isinstance(k, bytes) else k: Experiment.from_dict(json.loads(v))
                          for k, v in (await pipe.hgetall(key)).items()}
                if stored.get(experiment_id) != expected:
                    raise ExperimentConflict(f"experiment {experiment_id} changed meanwhile")
                busy = [e.experiment_id for e in stored.values() if e.model == model and e.running]
                if busy:
                    raise ExperimentConflict(f"experiment {busy[0]} is already running on {model}; stop it first")
                pipe.multi()
                if new is None:
                    pipe.hdel(key, experiment_id)
                else:
                    pipe.hset(key, experiment_id, json.dumps(new.to_dict()))
                await pipe.execute()
            except WatchError as exc:
                raise ExperimentConflict(f"experiments changed meanwhile ({experiment_id})") from exc

    async def add(self, counts: Mapping[tuple[str, str, str], float],
                  scores: Sequence[tuple[str, str, float, bool]]) -> None:
        """Add ``(experiment, arm, counter) -> amount`` to the counters and ``(experiment, arm, score,
        is_fraud)`` of newly labelled decisions to the score lists (the newest SCORES_KEPT stay), in one
        transaction: all of it or nothing, so a retry never counts twice."""
        if not counts and not scores:
            return
        touched = set()
        async with self.redis.pipeline(transaction=True) as pipe:
            for (experiment_id, arm, counter), amount in counts.items():
                key = self.keys.experiment_counts(experiment_id)
                pipe.hincrbyfloat(key, f"{arm}:{counter}", float(amount))
                touched.add(key)
            lists = set()
            for experiment_id, arm, score, is_fraud in scores:
                key = self.keys.experiment_scores(experiment_id, arm)
                pipe.lpush(key, f"{score:.6f} {int(is_fraud)}")
                lists.add(key)
            for key in lists:
                pipe.ltrim(key, 0, SCORES_KEPT - 1)
            for key in touched | lists:
                pipe.expire(key, EXPERIMENT_TTL_S)
            await pipe.execute()

    async def outcomes(self, experiment_id: str, with_scores: bool = True
                       ) -> tuple[dict[str, dict[str, float]], dict[str, list]]:
        """Per arm: its counters, and (``with_scores``) its labelled (score, is_fraud) pairs."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.experiment_counts(experiment_id))
            for arm in ARMS if with_scores else ():
                pipe.lrange(self.keys.experiment_scores(experiment_id, arm), 0, -1)
            raw, *lists = await pipe.execute()
        counts: dict[str, dict[str, float]] = {arm: {} for arm in ARMS}
        for field, value in raw.items():
            arm, _, counter = (field.decode() if isinstance(field, bytes) else field).partition(":")
            counts.setdefault(arm, {})[counter] = float(value)
        scores = {}
        for arm, entries in zip(ARMS if with_scores else (), lists, strict=True):
            pairs = [(e.decode() if isinstance(e, bytes) else e).split() for e in entries]
            scores[arm] = [(float(score), label == "1") for score, label in pairs]
        return counts, scores
