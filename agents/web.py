"""The worker's HTTP endpoints on Faust's web server (127.0.0.1 unless configured):
/metrics (Prometheus), /health (the process answers), /ready (partitions assigned and not
rebalancing, Redis answers, models loaded; ``warnings`` name what makes Redis untrustworthy for
the decision guard: an evicting maxmemory-policy, data lost since the worker first saw it).
Consumer lag per partition is sampled every 2 s; a revoked partition's lag series is removed at once."""

from __future__ import annotations

import faust
from faust.web import Request, Response, View

from agents.api.routing import shared_url
from agents.runtime import Runtime
from agents.timers import resilient_timer
from streams.app import Topology

LAG_INTERVAL_S = 2.0


async def readiness(app: faust.App, runtime: Runtime) -> dict:
    assigned = bool(app.consumer.assignment())
    checks = {
        "partitions_assigned": assigned and not app.rebalancing,
        "redis": await runtime.redis_ok(),
        "models_loaded": runtime.models_loaded.is_set() and runtime.reco is not None,
    }
    runtime.metrics.ready.set(float(all(checks.values())))
    warnings = runtime.redis_warnings()
    if assigned and shares_its_url(app, runtime):
        warnings.append(shared_url_warning(app))
    return {"ready": all(checks.values()), **checks, "warnings": warnings}


def shares_its_url(app: faust.App, runtime: Runtime) -> bool:
    """Whether another worker in the group advertises this worker's URL (agents.api.routing)."""
    topic = runtime.settings.topics.transactions
    mine = {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}
    return shared_url(app.assignor.external_topics_metadata(), str(app.conf.canonical_url), topic, mine)


def shared_url_warning(app: faust.App) -> str:
    return (f"another worker advertises {app.conf.canonical_url} too: API requests are not routed to their "
            "owners; give each worker its own STREAMSENSE_ADVERTISED_URL")


def register_web(topology: Topology, runtime: Runtime) -> None:
    app = topology.app

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        await readiness(app, runtime)
        return web.bytes(runtime.metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: View, request: Request) -> Response:
        state = await readiness(app, runtime)
        return web.json(state, status=200 if state["ready"] else 503)

    @app.on_partitions_revoked.connect
    async def forget_lag(sender: faust.App, revoked: set, **kwargs: object) -> None:
        runtime.metrics.partitions_revoked({(tp.topic, tp.partition) for tp in revoked})

    @resilient_timer(app, LAG_INTERVAL_S, "sampling consumer lag")
    async def sample_lag() -> None:
        consumer, lags = app.consumer, {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:  # not fetched yet, or just assigned in a rebalance
                continue
            # Faust keeps the last offset it read per partition; the lag is what lies beyond it.
            read = consumer._read_offset.get(tp)  # noqa: SLF001 - no public accessor in Faust 0.15
            position = (read + 1) if read is not None else (consumer._committed_offset.get(tp) or 0)  # noqa: SLF001
            lags[tp.topic, tp.partition] = max(highwater - position, 0)
        runtime.metrics.consumer_lag(lags)
