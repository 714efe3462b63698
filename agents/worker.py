"""Build and run one streamsense worker: app, agents, Redis, models."""

from __future__ import annotations

import logging
from functools import partial

import faust

from agents.api.server import register_api
from agents.api.web_server import HttpLimits, LimitedWeb
from agents.fraud_agents import register_fraud_agents
from agents.lifecycle_timers import register_lifecycle
from agents.logs import logging_config
from agents.memory import fix_mmap_threshold
from agents.reco_agents import register_reco_agents
from agents.runtime import Runtime
from agents.web import register_web
from online_models.engine import FraudEngine
from online_models.reco_engine import RecoEngine
from schemas.settings import Settings
from streams.app import Topology, make_app


def build_worker(settings: Settings, **app_overrides: object) -> tuple[Topology, Runtime]:
    topology = make_app(settings, **app_overrides)
    limits = HttpLimits(settings.api_header_timeout_s, settings.api_max_connections)
    topology.app.web_driver = partial(LimitedWeb, limits=limits)  # before any page is added
    runtime = Runtime(settings, topology.app, FraudEngine.from_settings(settings), RecoEngine.from_settings(settings))
    topology.app.service(runtime)
    register_fraud_agents(topology, settings, runtime)
    register_reco_agents(topology, settings, runtime)
    register_web(topology, runtime)
    register_api(topology, runtime)
    register_lifecycle(topology, runtime)
    return topology, runtime


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run until SIGTERM / Ctrl-C. Blocks."""
    use_event_loop(settings.event_loop)
    fix_mmap_threshold()
    topology, _ = build_worker(settings)
    logging.getLogger("streamsense").info("starting worker %s against %s", settings.app_id,
                                          settings.bootstrap_servers)
    faust_worker(topology.app, loglevel, logging_config(settings.log_format, loglevel)).execute_from_commandline()


def use_event_loop(name: str) -> None:
    """Install the event loop the worker (and the benchmark's baselines) run on, before anything
    creates one (``Settings.check`` admits only asyncio and uvloop)."""
    if name == "uvloop":
        import uvloop

        uvloop.install()


def faust_worker(app: faust.App, loglevel: str, logging_config: dict | None = None) -> faust.Worker:
    """A Faust worker without its terminal spinner: at levels of WARN and above the spinner sets the
    root logger to DEBUG so it can spin on every record, and then every debug call of aiokafka
    and Faust (one per message sent) builds a LogRecord: about 5% of a busy worker's CPU."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, logging_config=logging_config)
    worker.spinner = None
    return worker
