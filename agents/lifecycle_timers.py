"""The worker's model timers: publish the learner's checkpoint, follow the registry's pointer and
the experiments (agents.experiment_arms) and the published rule set.

Apart from agents.lifecycle so that the runtime, which owns the lifecycle, and these timers, which
need the runtime, import one way only.
"""

from __future__ import annotations

from agents.batching import emit_all
from agents.runtime import Runtime
from agents.timers import resilient_timer
from streams.app import Topology

FOLLOW_INTERVAL_S = 1.0


def register_lifecycle(topology: Topology, runtime: Runtime) -> None:
    app, settings = topology.app, runtime.settings

    @resilient_timer(app, settings.checkpoint_interval_s, "publishing the model checkpoint")
    async def publish_model() -> None:
        for lifecycle in runtime.lifecycles():
            await lifecycle.publish_if_learned()

    @resilient_timer(app, FOLLOW_INTERVAL_S, "reading the model registry (the current model is served)")
    async def follow_model() -> None:
        for lifecycle in runtime.lifecycles():
            await lifecycle.follow()
            runtime.metrics.checkpoint_serving.labels(lifecycle.role).set(lifecycle.serving_version or 0)
        # Experiments: this worker's outcomes in, the guardrails judged on everyone's, then the
        # experiments as they are now.
        await runtime.arms.flush()
        await emit_all(app, await runtime.guard.judge(list(runtime.arms.running.values())))
        await runtime.arms.follow(runtime.engine)

    @resilient_timer(app, FOLLOW_INTERVAL_S, "reading the published rule set (the current rules are served)")
    async def follow_rules() -> None:
        await runtime.rules.follow()
