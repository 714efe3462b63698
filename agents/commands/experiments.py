"""`streamsense experiments start | ramp | stop | list | show`: canary and A/B experiments by hand.

An experiment is written to Redis (agents.stores.experiments), which every worker follows within
about a second (agents.experiment_arms), and each change is published on model-events as an
``ExperimentEvent``. Like ``models promote``, a change is whole or not at all: the producer
connects first (an unreachable Kafka changes nothing), and a change that cannot be published is
undone.
"""

from __future__ import annotations

import getpass
import json
import secrets
import socket
import sys
import time

from aiokafka.errors import KafkaError

from agents import clients
from agents.commands.io import started_producer
from agents.stores.checkpoints import RedisCheckpoints
from agents.stores.experiments import ExperimentConflict, ExperimentStore
from online_models.checkpoints import CheckpointRejected
from online_models.experiment_stats import FRAUD_FIGURES, RECO_FIGURES, arm_rows
from online_models.experiments import Experiment, Guardrails, check_treatment, next_share
from schemas.records import ExperimentEvent
from schemas.settings import Settings


def operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def event_for(kind: str, experiment: Experiment, by: str, at: float) -> ExperimentEvent:
    return ExperimentEvent(event=kind, role=experiment.model, experiment=experiment.experiment_id,
                           treatment=experiment.treatment, share=experiment.share if experiment.running else 0.0,
                           reason=experiment.reason, by=by, at=at)


async def publish_change(settings: Settings, store: ExperimentStore, producer, old: Experiment | None,
                         new: Experiment, kind: str, by: str) -> ExperimentEvent:
    """Write ``new`` (in place of ``old``, or as a new experiment) and publish it; undone if publishing fails."""
    if old is None:
        await store.start(new)
    else:
        await store.replace(old, new)
    event = event_for(kind, new, by, time.time())
    try:
        await producer.send_and_wait(settings.topics.model_events, event.to_json(), key=new.model.encode())
    except KafkaError:
        try:
            if old is None:
                await store.remove(new)
            else:
                await store.replace(new, old)
        except ExperimentConflict:
            pass  # changed again meanwhile (a worker's guardrail): that change stands
        raise
    return event


async def change(settings: Settings, action: str, *, model: str | None = None, treatment: str | None = None,
                 share: float = 5.0, guardrails: Guardrails | None = None, experiment_id: str | None = None,
                 to: float | None = None, reason: str = "") -> ExperimentEvent:
    """start, ramp or stop; prints the event published and returns it."""
    producer = await started_producer(settings)
    redis = clients.redis_client(settings)
    try:
        store = ExperimentStore.on_redis(redis, settings)
        if action == "start":
            old, new = None, await _new_experiment(settings, redis, model, treatment, share,
                                                   guardrails or Guardrails())
            kind = "experiment_started"
        else:
            old = await _running(store, experiment_id, model)
            if action == "ramp":
                target = to if to is not None else next_share(old.share)
                if target is None or not old.share < target <= 100:
                    raise SystemExit(f"streamsense experiments: {old.experiment_id} is at {old.share:g} %; "
                                     "give a larger --to (at most 100)")
                counts, _ = await store.outcomes(old.experiment_id)
                new, kind = old.ramped(target, int(counts["treatment"].get("labels", 0) or
                                                   counts["treatment"].get("outcomes", 0))), "experiment_ramped"
            else:
                new, kind = old.with_status("stopped", reason or "stopped by hand"), "experiment_stopped"
        try:
            event = await publish_change(settings, store, producer, old, new, kind, operator())
        except ExperimentConflict as exc:
            raise SystemExit(f"streamsense experiments: {exc}") from None
        except KafkaError as exc:
            raise SystemExit(f"streamsense experiments: could not publish on {settings.topics.model_events} "
                             f"({exc}); the change is undone") from None
    finally:
        await redis.aclose()
        await producer.stop()
    print(json.dumps(event.to_dict()))
    return event


async def _new_experiment(settings: Settings, redis, model: str | None, treatment: str | None, share: float,
                          guardrails: Guardrails) -> Experiment:
    try:
        treatment = check_treatment(model or "", treatment or "")
    except ValueError as exc:
        raise SystemExit(f"streamsense experiments: {exc}") from None
    if not 0 < share <= 100:
        raise SystemExit("streamsense experiments: --share is a percentage in (0, 100]")
    if model == "fraud" and treatment.isdigit():
        try:  # the workers would refuse it; say so now
            await RedisCheckpoints.on_redis(redis, settings).load("fraud", int(treatment))
        except CheckpointRejected as exc:
            raise SystemExit(f"streamsense experiments: checkpoint v{treatment} refused: {exc}") from None
    return Experiment(f"exp-{model}-{secrets.token_hex(3)}", model, treatment, share, guardrails=guardrails,
                      started_at=time.time(), by=operator())


async def _running(store: ExperimentStore, experiment_id: str | None, model: str | None) -> Experiment:
    found = [e for e in await store.all() if e.running and (experiment_id in (None, e.experiment_id))
             and model in (None, e.model)]
    if len(found) != 1:
        raise SystemExit("streamsense experiments: " + ("no running experiment matches" if not found else
                         "several experiments run; name one (--experiment ID or --model)"))
    return found[0]


async def list_experiments(settings: Settings, out=sys.stdout) -> list[Experiment]:
    redis = clients.redis_client(settings)
    try:
        experiments = await ExperimentStore.on_redis(redis, settings).all()
    finally:
        await redis.aclose()
    for e in experiments:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.started_at))
        out.write(f"{e.experiment_id:<20} {e.model:<6} treatment {e.treatment:<12} {e.share:>5g} %  "
                  f"{e.status:<11} {started}  {e.reason}\n")
    return experiments


def format_figure(figure) -> str:
    if figure is None:
        return "-"
    value, (lo, hi) = figure
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def table(experiment: Experiment, counts: dict, scores: dict) -> str:
    """The arms side by side: counts and figures with their 95 % intervals."""
    names = FRAUD_FIGURES if experiment.model == "fraud" else RECO_FIGURES
    counted = ("n", "labels") if experiment.model == "fraud" else ("n", "outcomes")
    rows = arm_rows(experiment.model, counts, scores)
    header = ["arm", *counted, *names]
    lines = [header] + [[row.arm, *(f"{row.counts.get(c, 0):g}" for c in counted),
                         *(format_figure(row.figures[name]) for name in names)] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


async def show(settings: Settings, experiment_id: str | None = None, model: str | None = None,
               out=sys.stdout) -> str:
    redis = clients.redis_client(settings)
    try:
        store = ExperimentStore.on_redis(redis, settings)
        candidates = [e for e in await store.all() if experiment_id in (None, e.experiment_id)
                      and model in (None, e.model)]
        if not candidates:
            raise SystemExit("streamsense experiments: no such experiment")
        experiment = next((e for e in reversed(candidates) if e.running), candidates[-1])
        counts, scores = await store.outcomes(experiment.experiment_id)
    finally:
        await redis.aclose()
    g = experiment.guardrails
    text = (f"{experiment.experiment_id}  {experiment.model}: control vs treatment {experiment.treatment} at "
            f"{experiment.share:g} %  [{experiment.status}{': ' + experiment.reason if experiment.reason else ''}]\n"
            f"guardrails: review+decline +{g.max_flag_increase:g}, cost/label +{g.max_cost_increase:g}, "
            f"after {g.min_decisions} decisions / {g.min_labels} labels per arm, z {g.z:g}; "
            f"ramp {'after ' + str(g.ramp_after) + ' labelled events' if g.ramp_after else 'by command'}\n"
            + table(experiment, counts, scores) + "\n")
    out.write(text)
    return text
