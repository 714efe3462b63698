"""`streamsense rules check | publish | backtest FILE`: rule sets, from a file to every worker.

Backtesting replays the labelled decision-time snapshots kept on the learn topic through the
candidate and the live rule set (online_models.backtest) and prints what would change.


Publishing records the rule set on the compacted ``rule-sets`` topic (key ``fraud``: the topic
keeps the latest one, and its history until compaction) and then writes it to Redis, where every
worker reads it within a second (agents.rules_follower). The file is checked first (schema and
condition language); a file that does not load publishes nothing.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from agents import clients
from agents.learner import LearnTopicReader
from agents.stores.rules import ROLE, RedisRuleSets
from online_models.backtest import BacktestRow, backtest, format_report
from online_models.rules import RuleSet, RuleSetRefused, default_rule_set
from schemas.internal_records import LabelledExample, example_from_doc, read_learn_batch
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


async def labelled_snapshots(settings: Settings, since: float, until: float) -> list[BacktestRow]:
    """The labelled decision-time snapshots on the learn topic (as long as its retention keeps them),
    decided in [since, until); the last label of an event wins (a chargeback after the horizon's
    assumed legitimate)."""
    topic = settings.learn_topic
    consumer = clients.consumer(settings, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        end = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    rows: dict[str, BacktestRow] = {}
    for msg in await LearnTopicReader(settings).read(topic, 0, 0, end):
        try:
            docs = read_learn_batch(msg.value or b"")
        except (ValueError, KeyError, TypeError):  # the learner dead-letters these; not ours to judge
            continue
        for doc in docs:
            try:
                example = example_from_doc(doc)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if isinstance(example, LabelledExample) and since <= example.snapshot.ts < until:
                s = example.snapshot
                rows[example.event_id] = BacktestRow(example.event_id, s.features, s.ts, s.score, example.is_fraud,
                                                          s.blend, s.calibration)
    return sorted(rows.values(), key=lambda r: r.ts)


async def live_rule_set(settings: Settings) -> RuleSet:
    """The rule set the workers serve: the published one, else the default."""
    redis = clients.redis_client(settings)
    try:
        raw = await RedisRuleSets.on_redis(redis, settings).current()
    finally:
        await redis.aclose()
    return RuleSet.from_json(raw) if raw is not None else default_rule_set()


async def run_backtest(settings: Settings, path: str, *, since: float = 0.0, until: float = math.inf,
                       as_json: bool = False, out=sys.stdout) -> dict:
    candidate = load_rules_file(path)
    try:
        live = await live_rule_set(settings)
        rows = await labelled_snapshots(settings, since, until)
    except (KafkaError, RedisError, OSError) as exc:
        raise SystemExit(f"streamsense rules backtest: cannot read the snapshots ({exc})") from None
    report = backtest(rows, live, candidate, review=settings.review_threshold, decline=settings.decline_threshold)
    out.write((json.dumps(report) if as_json else format_report(report)) + "\n")
    return report
