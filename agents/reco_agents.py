"""Faust agents of the recommendation path. Thin: a batch in, the processor, outputs emitted."""

from __future__ import annotations

import logging

import faust
from redis.exceptions import RedisError

from agents.batching import run_batches
from agents.runtime import Runtime
from schemas.settings import Settings
from streams.app import Topology

log = logging.getLogger(__name__)

TRENDING_REFRESH_S = 2.0


def register_reco_agents(topology: Topology, settings: Settings, runtime: Runtime) -> None:
    app = topology.app

    @app.agent(topology.interactions, name="learn-interactions")
    async def learn_interactions(stream: faust.StreamT) -> None:
        await run_batches(app, stream, lambda batch: runtime.reco.on_interactions(batch), settings, "batch",
                          runtime.metrics)

    @app.agent(topology.reco_requests, name="answer-requests")
    async def answer_requests(stream: faust.StreamT) -> None:
        await run_batches(app, stream, lambda batch: runtime.reco.on_requests(batch), settings, "batch",
                          runtime.metrics)

    @app.timer(interval=TRENDING_REFRESH_S)
    async def refresh_trending() -> None:
        try:
            await runtime.reco.refresh_trending()
        except RedisError as exc:
            log.warning("refreshing trending items failed, serving the previous list: %s", exc)
