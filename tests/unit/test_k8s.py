"""The Kubernetes manifests in docker/k8s/: valid resources (kubernetes-validate, strict), and
consistent with the code -- every variable a setting the worker accepts, the ports and probe paths
the worker serves, a URL of its own per pod, selectors that select the workers."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from agents.api.openapi import openapi_document
from schemas.settings import Settings, SettingsError

K8S = Path(__file__).resolve().parents[2] / "docker" / "k8s"
README = Path(__file__).resolve().parents[2] / "README.md"
NAMESPACE = "streamsense"
VERSIONS = ("1.28.0", kubernetes_validate.latest_version())  # the oldest and newest this is checked against


def documents(pattern: str = "*.yaml") -> list[dict]:
    return [doc for path in sorted(K8S.glob(pattern)) for doc in yaml.safe_load_all(path.read_text()) if doc]


def resource(kind: str, name: str | None = None) -> dict:
    (found,) = [d for d in documents() if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return found


def worker() -> tuple[dict, dict]:
    statefulset = resource("StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    return statefulset, container


def secret_template() -> dict:
    (secret,) = documents("templates/secret.yaml")
    return secret


def pod_environment(pod: str, secret_dir: Path, secret_values: dict[str, str]) -> dict[str, str]:
    """The variables the worker container of ``pod`` starts with, as the kubelet makes them: the
    ConfigMap's, then the container's own with field references and $(VAR) expanded; the Secret's
    files, mounted at their path, are made in ``secret_dir`` with ``secret_values``."""
    statefulset, container = worker()
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        env.update(resource("ConfigMap", source["configMapRef"]["name"])["data"])
    fields = {"metadata.name": pod, "metadata.namespace": NAMESPACE}
    for var in container["env"]:
        value = fields[var["valueFrom"]["fieldRef"]["fieldPath"]] if "valueFrom" in var else var["value"]
        env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "secrets"]
    for name, value in env.items():
        if name.endswith("_FILE"):
            key = value.removeprefix(mount["mountPath"] + "/")
            (secret_dir / key).write_text(secret_values[key] + "\n")
            env[name] = str(secret_dir / key)
    return {k: v for k, v in env.items() if k.startswith("STREAMSENSE_")}


def strong_values() -> dict[str, str]:
    return {key: (f"rediss://streamsense:{secrets.token_hex(16)}@redis:6380/0" if key == "redis-url"
                  else secrets.token_hex(32)) for key in secret_template()["stringData"]}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_a_valid_kubernetes_resource(version: str) -> None:
    docs = documents() + documents("templates/*.yaml")
    assert {d["kind"] for d in docs} == {"ConfigMap", "Secret", "Service", "StatefulSet", "PodDisruptionBudget"}
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on an unknown or mistyped field


def test_the_validator_refuses_a_mistyped_manifest() -> None:
    statefulset = resource("StatefulSet")
    broken = {**statefulset, "spec": {**statefulset["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_each_pod_starts_with_settings_the_worker_accepts_and_a_url_of_its_own(tmp_path) -> None:
    values, urls = strong_values(), []
    statefulset, container = worker()
    for ordinal in range(statefulset["spec"]["replicas"]):
        pod = f"{statefulset['metadata']['name']}-{ordinal}"
        (tmp_path / pod).mkdir()
        settings = Settings.from_env(pod_environment(pod, tmp_path / pod, values))  # unknown names refused
        settings.check_secrets()  # strong keys, no development flag
        assert settings.redis_url.get_secret_value() == values["redis-url"] and not settings.dev_mode
        assert settings.sasl_password.get_secret_value() == values["kafka-worker-password"]
        # Reached by the other workers at the pod's own name under the headless Service.
        assert settings.web_url == f"http://{pod}.{statefulset['spec']['serviceName']}.{NAMESPACE}.svc.cluster.local:" \
                                   f"{settings.web_port}"
        assert settings.web_bind == "0.0.0.0" and settings.data_dir == container["volumeMounts"][1]["mountPath"]
        urls.append(settings.web_url)
    assert len(set(urls)) == len(urls) == 2


def test_the_secret_template_names_every_file_the_worker_reads_and_cannot_run_as_it_is(tmp_path) -> None:
    _, container = worker()
    read = {v["value"].rsplit("/", 1)[1] for v in container["env"] if v["name"].endswith("_FILE")}
    template = secret_template()
    assert read == set(template["stringData"])
    statefulset = resource("StatefulSet")
    (volume,) = statefulset["spec"]["template"]["spec"]["volumes"]
    assert volume["secret"]["secretName"] == template["metadata"]["name"]
    placeholders = Settings.from_env(pod_environment("streamsense-worker-0", tmp_path, template["stringData"]))
    with pytest.raises(SettingsError, match="cannot be used"):
        placeholders.check_secrets()
    # The README's command creates the same keys from docker/secrets/.
    command = re.search(r"kubectl create secret generic (\S+)(.*?)\n\s*```", README.read_text(), re.S)
    assert command and command.group(1) == template["metadata"]["name"]
    assert set(re.findall(r"--from-file=([\w-]+)=docker/secrets/\1\b", command.group(2))) == read


def test_ports_probes_and_services_reach_what_the_worker_serves(tmp_path) -> None:
    statefulset, container = worker()
    settings = Settings.from_env(pod_environment("streamsense-worker-0", tmp_path, strong_values()))
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("http", settings.web_port)
    served = set(openapi_document()["paths"])
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startupProbe": "/health", "livenessProbe": "/health", "readinessProbe": "/ready"}
    assert all(p["path"] in served and p["port"] == "http" for p in probes.values())
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert (int(annotations["prometheus.io/port"]), annotations["prometheus.io/path"]) == (settings.web_port,
                                                                                            "/metrics")
    assert "/metrics" in served
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    services = {d["metadata"]["name"]: d for d in documents() if d["kind"] == "Service"}
    for service in services.values():
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    headless = services[statefulset["spec"]["serviceName"]]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    budget = resource("PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"].items() <= pod_labels.items() and budget["maxUnavailable"] == 1


def test_pods_have_requests_a_graceful_stop_and_no_service_link_variables() -> None:
    statefulset, container = worker()
    pod = statefulset["spec"]["template"]["spec"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    # Long enough to finish the batch in hand, commit and publish the last checkpoint (on_stop).
    assert pod["terminationGracePeriodSeconds"] >= 30
    # Kubernetes would inject <SERVICE>_SERVICE_HOST and _PORT for every Service in the namespace,
    # and ours are named streamsense-*: variables the worker does not know.
    links = {re.sub(r"\W", "_", name.upper()) + "_SERVICE_HOST" for name in
             (d["metadata"]["name"] for d in documents() if d["kind"] == "Service")}
    assert all(link.startswith("STREAMSENSE_") for link in links) and pod["enableServiceLinks"] is False
    assert container["securityContext"]["allowPrivilegeEscalation"] is False and pod["securityContext"]["runAsNonRoot"]
    # The Secret's files belong to the fsGroup, a supplementary group of the worker's process: group-readable.
    (volume,) = pod["volumes"]
    assert volume["secret"]["defaultMode"] & 0o040 and pod["securityContext"]["fsGroup"]
