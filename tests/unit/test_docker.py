"""No Docker engine runs here: the deployment files are checked by parsing them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from agents.metrics import Metrics
from schemas.settings import Settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> set[str]:
    """Every series name the worker's registry can export, whether or not it has samples yet."""
    return {f.name + suffix for f in Metrics().registry.collect() for suffix in SUFFIXES[f.type]}


def test_compose_has_every_service_with_image_command_ports_and_environment() -> None:
    services = compose()["services"]
    assert set(services) == {"kafka", "redis", "worker-1", "worker-2", "simulator", "prometheus", "grafana"}
    for name, service in services.items():
        assert service.get("image"), name
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        assert worker["command"][0] == "worker" and worker["build"]["dockerfile"] == "docker/Dockerfile"
        env = worker["environment"]
        assert env["STREAMSENSE_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["STREAMSENSE_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
        assert "?" in env["STREAMSENSE_PSEUDONYM_KEY"] and "?" in env["STREAMSENSE_SIGNING_KEY"]  # required, no default
        assert env["STREAMSENSE_WEB_PORT"] == "6066" and worker["expose"] == ["6066"] and "ports" not in worker
        Settings.from_env({k: v for k, v in env.items() if "${" not in v})  # every variable is a known setting
    assert services["simulator"]["command"][0] == "simulate"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "--requirepass" in services["redis"]["command"]
    for name in ("kafka", "redis", "prometheus", "grafana"):
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"]), name  # loopback only


def test_prometheus_scrapes_every_worker_on_its_metrics_port() -> None:
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    targets = job["static_configs"][0]["targets"]
    services = compose()["services"]
    workers = sorted(n for n, s in services.items() if s.get("command", [""])[0] == "worker")
    assert targets == [f"{w}:{services[w]['environment']['STREAMSENSE_WEB_PORT']}" for w in workers]


def test_the_dashboard_uses_only_metrics_the_worker_exports() -> None:
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "streamsense.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bstreamsense_[a-z_]+", expr)}
    assert used and used <= exported_names(), used - exported_names()
    families = {f.name for f in Metrics().registry.collect()}
    assert all(any(u.startswith(f) for u in used) for f in families)  # and every metric has a panel


def test_dockerfile_is_slim_non_root_and_runs_the_worker() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert re.findall(r"^FROM python:3\.11-slim", text, re.M) and "USER streamsense" in text
    assert 'ENTRYPOINT ["streamsense"]' in text and 'CMD ["worker"]' in text and "HEALTHCHECK" in text
