"""`streamsense rules check | publish FILE`: rule sets, from a file to every worker.

Publishing records the rule set on the compacted ``rule-sets`` topic (key ``fraud``: the topic
keeps the latest one, and its history until compaction) and then writes it to Redis, where every
worker reads it within a second (agents.rules_follower). The file is checked first (schema and
condition language); a file that does not load publishes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from agents import clients
from agents.stores.rules import ROLE, RedisRuleSets
from online_models.rules import RuleSet, RuleSetRefused
from schemas.settings import Settings


def load_rules_file(path: str) -> RuleSet:
    """The rule set in ``path`` (JSON, or YAML for .yaml / .yml); SystemExit naming what is wrong."""
    try:
        text = Path(path).read_text()
        doc = _yaml(text) if path.endswith((".yaml", ".yml")) else json.loads(text)
        return RuleSet.from_doc(doc)
    except (OSError, RuleSetRefused, ValueError) as exc:
        raise SystemExit(f"streamsense rules: {path} refused: {exc}") from None


def _yaml(text: str) -> object:
    try:
        import yaml  # only the operator's machine reads YAML; workers receive JSON
    except ImportError:
        raise SystemExit("streamsense rules: reading YAML needs PyYAML (pip install pyyaml==6.0.2); "
                         "or give the rule set as JSON") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not YAML: {exc}") from None


async def publish(settings: Settings, path: str, out=sys.stdout) -> RuleSet:
    rules = load_rules_file(path)
    producer = clients.producer(settings, acks="all")
    try:
        await producer.start()
        await producer.send_and_wait(settings.topics.rule_sets, rules.to_json(), key=ROLE.encode())
    except KafkaError as exc:
        raise SystemExit(f"streamsense rules: could not publish on {settings.topics.rule_sets} ({exc}); "
                         "nothing changed") from None
    finally:
        await producer.stop()
    redis = clients.redis_client(settings)
    try:
        await RedisRuleSets.on_redis(redis, settings).publish(rules)
    except (RedisError, OSError) as exc:
        raise SystemExit(f"streamsense rules: recorded on {settings.topics.rule_sets} but Redis refused it "
                         f"({exc}): workers still serve the previous rules; publish again") from None
    finally:
        await redis.aclose()
    out.write(json.dumps({"published": rules.version, "rules": len(rules.rules),
                          "shadow": [r.name for r in rules.rules if r.mode == "shadow"]}) + "\n")
    return rules
