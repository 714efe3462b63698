"""Model checkpoints in the worker: restore the newest valid one on start, save when models learned.

Each checkpoint is stamped with the input offsets the worker had read when it was taken, so an
operator can tell which events a model reflects.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import faust
from faust.exceptions import ConsumerNotStarted

from agents.checkpoint_store import FileCheckpoints
from agents.runtime import Runtime
from streams.app import Topology

log = logging.getLogger(__name__)


def checkpoint_store(settings) -> FileCheckpoints:
    return FileCheckpoints(Path(settings.data_dir) / "checkpoints", settings.signing_key.get_secret_value().encode())


def read_offsets(app: faust.App) -> dict[str, int]:
    try:
        consumer = app.consumer
        return {f"{tp.topic}/{tp.partition}": offset for tp in consumer.assignment()
                if (offset := consumer._read_offset.get(tp)) is not None}  # noqa: SLF001 - see agents.web
    except ConsumerNotStarted:  # stopping before the consumer ever started: nothing read yet
        return {}


def engines(runtime: Runtime) -> dict:
    return {"fraud": runtime.engine, "reco": runtime.reco_engine}


def restore(runtime: Runtime, store: FileCheckpoints) -> None:
    for role, engine in engines(runtime).items():
        found = store.restore(role)
        if found is None:
            log.info("no valid %s checkpoint: starting from a fresh model", role)
            continue
        engine.load(found[0])


def register_checkpoints(topology: Topology, runtime: Runtime) -> None:
    app, settings = topology.app, runtime.settings
    store = checkpoint_store(settings)
    restore(runtime, store)  # before the first event is scored: build time, not start time
    saved = {role: engine.model_version for role, engine in engines(runtime).items()}

    def save_changed() -> None:
        for role, engine in engines(runtime).items():
            if engine.model_version == saved[role]:
                continue
            version = store.save(role, engine.models(), {"model_version": engine.model_version,
                                                          "offsets": read_offsets(app), "created_at": time.time()})
            saved[role] = engine.model_version
            log.info("checkpoint %s v%d (model %s)", role, version, engine.model_version)

    @app.timer(interval=settings.checkpoint_interval_s)
    async def checkpoint_models() -> None:
        save_changed()

    runtime.add_stop_hook(save_changed)
