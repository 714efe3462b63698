"""Faust agents of the recommendation path. Thin: a batch in, the processor, outputs emitted."""

from __future__ import annotations

import faust

from agents.batching import run_batches
from agents.runtime import Runtime
from agents.timers import resilient_timer
from schemas.settings import Settings
from streams.app import Topology

TRENDING_REFRESH_S = 2.0


def register_reco_agents(topology: Topology, settings: Settings, runtime: Runtime) -> None:
    app = topology.app

    @app.agent(topology.interactions, name="learn-interactions")
    async def learn_interactions(stream: faust.StreamT) -> None:
        await run_batches(app, stream, runtime.after_restore(lambda batch: runtime.reco.on_interactions(batch)),
                          settings, "batch", runtime.metrics)

    @app.agent(topology.reco_requests, name="answer-requests")
    async def answer_requests(stream: faust.StreamT) -> None:
        await run_batches(app, stream, runtime.after_restore(lambda batch: runtime.reco.on_requests(batch)), settings,
                          "batch", runtime.metrics)

    @resilient_timer(app, TRENDING_REFRESH_S, "refreshing trending items (the previous list is served)")
    async def refresh_trending() -> None:
        await runtime.reco.refresh_trending()
