"""Every worker serves the published rule set within a second.

The same mechanism as the model checkpoints (agents.lifecycle): ``streamsense rules publish``
records the rule set on the compacted ``rule-sets`` topic and writes it to Redis
(agents.stores.rules); each worker reads it there once a second (agents.lifecycle_timers) and
swaps it into its engine when it changed. A document that does not load (it was written by hand,
or by a newer version) is refused with a log line, and the worker keeps the rules it serves.
"""

from __future__ import annotations

import json
import logging

from agents.metrics import Metrics
from agents.stores.rules import RedisRuleSets
from online_models.engine import FraudEngine
from online_models.rules import RuleSet, RuleSetRefused

log = logging.getLogger(__name__)


class RulesFollower:
    def __init__(self, engine: FraudEngine, store: RedisRuleSets, metrics: Metrics) -> None:
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.seen: bytes | None = None  # the published document read last (served, or refused)
        metrics.rule_set.labels(engine.rules.version).set(1.0)

    async def follow(self) -> None:
        raw = await self.store.current()
        if raw is None or raw == self.seen:
            return
        self.seen = raw
        try:
            rules = RuleSet.from_doc(json.loads(raw))
        except (RuleSetRefused, ValueError) as exc:
            log.error("refused the published rule set: %s; serving %s", exc, self.engine.rules.version)
            self.metrics.rule_sets_refused.inc()
            return
        self.metrics.rule_set.clear()
        self.metrics.rule_set.labels(rules.version).set(1.0)
        self.engine.rules = rules  # the engine's own switches to shadow start afresh with it
        log.info("serving rule set %s (%d rules)", rules.version, len(rules.rules))
