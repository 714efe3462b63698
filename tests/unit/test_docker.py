"""No Docker engine runs here: the deployment files are checked by parsing them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib.metadata import distributions

import pytest
import yaml
from compose_files import DOCKER, compose, with_secret_files
from prometheus_client.metrics import MetricWrapperBase

from agents.metrics import Metrics
from schemas.settings import Settings, SettingsError
from streams.app import kafka_client_options

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "stateset": ("",)}
METRIC = re.compile(r"\b(streamsense_[a-z_]+|process_[a-z_]+|python_[a-z_]+|up)\b(?:\{([^}]*)\})?")
SCRAPE_LABELS = {"job", "instance"}  # Prometheus adds them to every scraped series


def exported_names() -> set[str]:
    """Every series name the worker's registry can export, whether or not it has samples yet."""
    return {f.name + suffix for f in Metrics().registry.collect() for suffix in SUFFIXES[f.type]}


def exported_labels() -> dict[str, set[str]]:
    """Each exported series name's label names (its own, the type's, and the scrape's)."""
    labels = {"up": set(SCRAPE_LABELS)}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            own = set(metric._labelnames) | SCRAPE_LABELS  # noqa: SLF001 - no public accessor
            for family in metric.describe():
                extra = {"histogram": {"le"}, "stateset": {family.name}}.get(family.type, set())
                for suffix in SUFFIXES.get(family.type, ("",)):
                    labels[family.name + suffix] = own | extra
    for family in Metrics().registry.collect():  # the process, GC and platform collectors
        for sample in family.samples:
            labels.setdefault(sample.name, set(sample.labels) | SCRAPE_LABELS)
    return labels


def unknown_in(expr: str) -> list[str]:
    """What ``expr`` names that the worker does not export: metrics, label matchers, grouping labels."""
    known, wrong, used = exported_labels(), [], set()
    for name, matchers in METRIC.findall(expr):
        if name not in known:
            wrong.append(name)
            continue
        used |= known[name]
        wrong += [f"{name}{{{label}}}" for label in re.findall(r"(\w+)\s*[=!~]", matchers) if label not in known[name]]
    grouped = {label.strip() for group in re.findall(r"\b(?:by|on|without)\s*\(([^)]*)\)", expr)
               for label in group.split(",") if label.strip()}
    return wrong + [f"by ({label})" for label in grouped - used]


def test_compose_has_every_service_with_image_command_ports_and_environment() -> None:
    services = compose()["services"]
    assert set(services) == {"kafka-format", "kafka", "redis", "worker-1", "worker-2", "simulator", "kafka-exporter",
                             "prometheus", "grafana"}
    for name, service in services.items():
        assert service.get("image"), name
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        assert worker["command"][0] == "worker" and worker["build"]["dockerfile"] == "docker/Dockerfile"
        env = worker["environment"]
        assert env["STREAMSENSE_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["STREAMSENSE_WEB_PORT"] == "6066" and worker["expose"] == ["6066"] and "ports" not in worker
    assert services["simulator"]["command"][0].startswith("exec streamsense simulate ")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    for name in ("prometheus", "grafana"):
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"]), name  # loopback only
    for name in ("redis", "worker-1", "worker-2", "simulator"):
        assert "ports" not in services[name], name  # reachable inside the compose network only
    assert services["kafka"]["ports"] == ["127.0.0.1:19092:19092"]  # the host listener, on loopback


def test_no_secret_sits_in_compose_an_environment_variable_or_a_command_line(tmp_path) -> None:
    doc = compose()
    services = doc["services"]
    declared = doc["secrets"]
    assert all(spec["file"].startswith("./secrets/") for spec in declared.values())
    for name, service in services.items():
        env = service.get("environment", {})
        for variable, value in env.items():
            if re.search(r"PASSWORD|KEY|SECRET|REDIS_URL", variable) and "ALLOW" not in variable:
                assert variable.endswith("_FILE") and value == f"/run/secrets/{value.rsplit('/', 1)[1]}", (name,
                                                                                                            variable)
                assert value.rsplit("/", 1)[1] in service["secrets"], (name, variable)
        assert not re.search(r"requirepass|password=[^$]", " ".join(map(str, service.get("command") or []))), name
    assert "${" not in (DOCKER / "compose.yaml").read_text()  # nothing interpolated from the environment
    assert services["redis"]["command"][:3] == ["redis-server", "--aclfile", "/run/secrets/redis.acl"]
    for name in ("worker-1", "worker-2", "simulator"):  # every variable is a known setting, secrets from files
        settings = Settings.from_env(with_secret_files(services[name]["environment"], tmp_path))
        assert settings.sasl_password and kafka_client_options(settings)["sasl_mechanism"] == "SCRAM-SHA-512"
    worker = Settings.from_env(with_secret_files(services["worker-1"]["environment"], tmp_path))
    worker.check_secrets()  # strong keys, no development flag
    assert not worker.dev_mode and worker.redis_url.get_secret_value().startswith("redis://streamsense:")


def test_kafka_authenticates_every_client_with_scram_and_keeps_its_internal_listeners_on_loopback() -> None:
    services = compose()["services"]
    env = services["kafka"]["environment"]
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    for name, address in listeners.items():  # anything reachable from another container authenticates
        assert protocols[name] == "SASL_PLAINTEXT" or address.startswith("127.0.0.1:"), name
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@127.0.0.1:9093"
    jaas = (DOCKER / "kafka" / "kafka_server_jaas.conf").read_text()
    assert "ScramLoginModule required" in jaas and env["KAFKA_OPTS"].endswith("/kafka_server_jaas.conf")
    # The one-shot format creates the SCRAM users the workers and the simulator log in as, in the
    # storage the broker starts from, with the same cluster id and the broker's own settings.
    fmt = services["kafka-format"]
    script = " ".join(fmt["command"])
    users = set(re.findall(r"SCRAM-SHA-512=\[name=([\w-]+),password=\$\$\(cat /run/secrets/([\w-]+)\)\]", script))
    logins = {(services[s]["environment"]["STREAMSENSE_SASL_USERNAME"],
               services[s]["environment"]["STREAMSENSE_SASL_PASSWORD_FILE"].rsplit("/", 1)[1])
              for s in ("worker-1", "worker-2", "simulator")}
    exporter = " ".join(services["kafka-exporter"]["command"])
    logins.add((re.search(r"--sasl.username=(\S+)", exporter).group(1),
                re.search(r"--sasl.password=\$\$\(cat /run/secrets/([\w-]+)\)", exporter).group(1)))
    assert "--sasl.enabled --sasl.mechanism=scram-sha512" in exporter
    assert users == logins and "--ignore-formatted" in script
    assert services["kafka"]["depends_on"]["kafka-format"]["condition"] == "service_completed_successfully"
    assert fmt["environment"]["CLUSTER_ID"] == env["CLUSTER_ID"]
    assert {v.split(":")[0] for v in fmt["volumes"]} & {v.split(":")[0] for v in services["kafka"]["volumes"]}
    props = dict(line.split("=", 1) for line in (DOCKER / "kafka" / "format.properties").read_text().splitlines()
                 if line and not line.startswith("#"))
    assert (props["node.id"], props["process.roles"], props["log.dirs"], props["controller.quorum.voters"],
            props["listener.security.protocol.map"]) == (
        env["KAFKA_NODE_ID"], env["KAFKA_PROCESS_ROLES"], env["KAFKA_LOG_DIRS"], env["KAFKA_CONTROLLER_QUORUM_VOTERS"],
        env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"])


def test_secrets_stay_out_of_git_and_the_image_build() -> None:
    root = DOCKER.parent
    assert "docker/secrets" in (root / ".dockerignore").read_text().split()
    assert "docker/secrets/*" in (root / ".gitignore").read_text().split()
    documented = (DOCKER / "secrets" / "README.md").read_text()
    assert all(f"`{spec['file'].rsplit('/', 1)[1]}`" in documented for spec in compose()["secrets"].values())


def test_prometheus_scrapes_every_worker_on_its_metrics_port() -> None:
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    job, lag = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    # and the lag exporter, on the port it exposes in compose
    (exposed,) = compose()["services"]["kafka-exporter"]["expose"]
    assert lag["static_configs"][0]["targets"] == [f"kafka-exporter:{exposed}"]
    targets = job["static_configs"][0]["targets"]
    services = compose()["services"]
    workers = sorted(n for n, s in services.items() if s.get("command", [""])[0] == "worker")
    assert targets == [f"{w}:{services[w]['environment']['STREAMSENSE_WEB_PORT']}" for w in workers]


def dashboard() -> dict:
    return json.loads((DOCKER / "grafana" / "dashboards" / "streamsense.json").read_text())


def test_the_dashboard_uses_only_metrics_the_worker_exports() -> None:
    exprs = [t["expr"] for panel in dashboard()["panels"] for t in panel["targets"]]
    assert exprs and all(not unknown_in(expr) for expr in exprs), {e: unknown_in(e) for e in exprs if unknown_in(e)}
    used = {name for expr in exprs for name, _ in METRIC.findall(expr)}
    families = {f.name for f in Metrics().registry.collect() if f.name.startswith("streamsense_")}
    assert all(any(u.startswith(f) for u in used) for f in families)  # and every metric has a panel
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= used  # what a soak watches


def unit_of(expr: str) -> str:
    """The unit a query's values are in: a quantile of a *_seconds histogram or the age of a timestamp
    is seconds, a rate of CPU seconds a share of a core, any other rate per second, an increase a
    count; otherwise the gauge's own unit."""
    if "histogram_quantile(" in expr:
        assert "_seconds_bucket" in expr, expr
        return "s"
    if re.match(r"time\(\) - \w+\(\w+_timestamp_seconds\)", expr):  # the age of a timestamp
        return "s"
    if "rate(process_cpu_seconds_total" in expr:
        return "percentunit"
    if "rate(" in expr:
        return "ops"
    if "increase(" in expr:
        return "short"
    (name, _), *_ = METRIC.findall(expr)
    return {"streamsense_model_rolling_rocauc": "percentunit", "process_resident_memory_bytes": "bytes",
            "streamsense_redis_eviction_unsafe": "bool", "streamsense_experiment_share": "percent"}.get(name, "short")


def test_every_dashboard_panel_has_one_unit_on_its_axis() -> None:
    for panel in dashboard()["panels"]:
        units = {unit_of(t["expr"]) for t in panel["targets"]}
        assert units == {panel["fieldConfig"]["defaults"]["unit"]}, (panel["title"], units)
        assert not any(p["id"] == "unit" for o in panel["fieldConfig"].get("overrides", [])
                       for p in o.get("properties", [])), panel["title"]  # no second unit on a second axis


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load((DOCKER / "prometheus" / "alerts.yml").read_text())["groups"]
            for rule in group["rules"]]


def output_labels(expr: str) -> set[str]:
    """The labels an alert's series carry: an aggregation keeps only its ``by`` labels."""
    aggregated = re.match(r"\s*(?:sum|max|min|avg|count)\b(?:\s+by\s*\(([^)]*)\))?", expr)
    if aggregated:
        return {label.strip() for label in (aggregated.group(1) or "").split(",") if label.strip()}
    (name, _), *_ = METRIC.findall(expr)
    return exported_labels()[name]


def test_alert_rules_name_only_what_the_worker_exports() -> None:
    rules = alert_rules()
    wanted = {"StreamsenseConsumerLagGrowing": "streamsense_consumer_lag",
              "StreamsenseDeadLetterRate": "streamsense_dead_letters_total",
              "StreamsenseCircuitBreakerOpen": "streamsense_circuit_breaker_state",
              "StreamsenseNoDecisions": "streamsense_decisions_total",
              "StreamsenseDriftBurst": "streamsense_drift_signals_total"}
    by_name = {rule["alert"]: rule for rule in rules}
    assert all(metric in by_name[alert]["expr"] for alert, metric in wanted.items())
    for rule in rules:
        assert not unknown_in(rule["expr"]), (rule["alert"], unknown_in(rule["expr"]))
        assert rule["labels"]["severity"] in {"warning", "critical"} and rule["annotations"]["summary"]
        templated = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])))
        assert templated <= output_labels(rule["expr"]), (rule["alert"], templated)
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose()["services"]["prometheus"]["volumes"])
    assert mounts["./prometheus/alerts.yml"] in config["rule_files"]


def test_the_checks_above_can_fail() -> None:
    assert unknown_in("rate(streamsense_consumer_lagg[5m])") == ["streamsense_consumer_lagg"]
    assert unknown_in('streamsense_ready{stage="x"}') == ["streamsense_ready{stage}"]
    assert unknown_in("sum by (stage) (streamsense_consumer_lag)") == ["by (stage)"]
    assert unknown_in('streamsense_circuit_breaker_state{streamsense_circuit_breaker_state="open"}') == []


def test_dockerfile_is_slim_non_root_and_runs_the_worker() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert re.findall(r"^FROM python:3\.11\.\d+-slim", text, re.M) and "USER streamsense" in text
    assert 'ENTRYPOINT ["streamsense"]' in text and 'CMD ["worker"]' in text and "HEALTHCHECK" in text


def test_each_worker_listens_on_every_address_of_its_container_and_advertises_its_own_url(tmp_path) -> None:
    services = compose()["services"]
    workers = [Settings.from_env(with_secret_files(services[w]["environment"], tmp_path))
               for w in ("worker-1", "worker-2")]
    assert [(s.web_bind, s.web_port) for s in workers] == [("0.0.0.0", 6066)] * 2
    assert [s.web_url for s in workers] == ["http://worker-1:6066", "http://worker-2:6066"]
    # The image alone listens on 0.0.0.0 too, so a worker started from it without its own URL refuses
    # to start rather than advertise one every worker shares.
    image_env = dict(re.findall(r"(STREAMSENSE_\w+)=(\S+)", (DOCKER / "Dockerfile").read_text()))
    assert image_env["STREAMSENSE_WEB_BIND"] == "0.0.0.0"
    with pytest.raises(SettingsError, match="ADVERTISED_URL"):
        Settings.from_env(image_env)


class Ready(BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        Ready.paths.append(self.path)
        self.send_response(Ready.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [200, 503])
def test_the_image_health_check_asks_the_worker_where_it_listens(tmp_path, status: int) -> None:
    """The HEALTHCHECK run as the image runs it, with a compose worker's environment, against a stand-in
    for the worker listening on loopback (what 0.0.0.0 reaches from inside the container)."""
    command = re.search(r'CMD (python -c "(.+)")$', (DOCKER / "Dockerfile").read_text(), re.M).group(2)
    server = HTTPServer(("127.0.0.1", 0), Ready)
    Ready.status, Ready.paths = status, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**with_secret_files(compose()["services"]["worker-1"]["environment"], tmp_path),
           "STREAMSENSE_WEB_PORT": str(server.server_port), "PATH": os.environ["PATH"]}
    try:
        done = subprocess.run([sys.executable, "-c", command], env=env, capture_output=True, timeout=30,
                              cwd=DOCKER.parent)
    finally:
        server.shutdown()
        server.server_close()
    assert (done.returncode == 0) == (status == 200), done.stderr
    assert Ready.paths == ["/ready"]


ROOT = DOCKER.parent


def locked() -> dict[str, str]:
    """requirements.lock's pins: normalised name -> version."""
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_the_image_and_make_install_the_locked_versions_on_a_pinned_base() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", b) for b in bases), bases
    assert "-c requirements.lock" in dockerfile and "requirements.lock" in re.search(r"^COPY pyproject.*$",
                                                                                    dockerfile, re.M).group(0)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\): pyproject.toml requirements.lock$", makefile, re.M)
    assert "pip install --quiet -c requirements.lock -e" in makefile
    # Every version pyproject.toml pins is the locked one (else: make lock).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    lock = locked()
    for requirement in pinned:
        name, version = requirement.split("==")
        assert lock.get(re.sub(r"[-_.]+", "-", name).lower()) == version, (requirement, "run make lock")


def test_the_venv_holds_exactly_the_locked_versions() -> None:
    """What make venv installed is what the lock says (a dependency added without make lock fails here)."""
    lock = locked()
    installed = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in distributions()}
    assert {name: installed.get(name) for name in lock} == lock
    unlocked = set(installed) - set(lock) - {"streamsense", "pip", "setuptools", "wheel"}
    assert not unlocked, sorted(unlocked)  # installed by hand, or a dependency added without make lock


def test_dockerignore_keeps_what_the_image_does_not_need_out_of_the_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", "docker/secrets", ".hypothesis", ".ruff_cache", "docker/k8s"} <= ignored


def test_compose_waits_for_healthy_dependencies_keeps_its_data_and_restarts_the_simulator() -> None:
    doc = compose()
    services = doc["services"]
    for name in ("kafka", "redis", "prometheus"):
        assert services[name]["healthcheck"]["test"], name
    # Workers have the image's HEALTHCHECK (/ready): the simulator and Prometheus need them only started.
    assert "HEALTHCHECK" in (DOCKER / "Dockerfile").read_text()
    for name, service in services.items():
        waits = service.get("depends_on") or {}
        for dependency, wait in (waits.items() if isinstance(waits, dict) else ((d, None) for d in waits)):
            if dependency in ("kafka", "redis", "prometheus"):
                assert wait == {"condition": "service_healthy"}, (name, dependency)
    data = {"kafka": "/var/lib/kafka/data", "redis": "/data", "prometheus": "/prometheus",
            "grafana": "/var/lib/grafana"}
    for name, path in data.items():
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert mounts[path] in doc["volumes"], name  # a named volume: kept by `docker compose down`
    simulator = services["simulator"]
    assert simulator["restart"] == "unless-stopped" and '--seed "$$(date +%s)"' in simulator["command"][0]
