"""The Kubernetes manifests parse and agree with the worker's config and each other."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomli, as stream/config/loading.py does
    import tomli as tomllib

from stream.config.loading import load_config
from stream.config.model_checks import check_rules_against_labels
from stream.config.schema import AlertRule

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
UWAVE_LABELS = tuple(f"{k}.0" for k in range(1, 9))  # the shipped model's labels


def documents() -> dict[str, dict[str, Any]]:
    """kind -> the one document of that kind among deploy/k8s/*.yaml."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert isinstance(document, dict), f"{path.name}: not a YAML mapping"
            assert document["kind"] not in found, f"{path.name}: second {document['kind']}"
            found[document["kind"]] = document
    return found


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    return documents()


@pytest.fixture(scope="module")
def worker_container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


@pytest.fixture(scope="module")
def configmap_toml(manifests: dict[str, dict[str, Any]]) -> str:
    return manifests["ConfigMap"]["data"]["config.toml"]


def test_every_manifest_parses_and_names_its_object(manifests: dict[str, dict[str, Any]]) -> None:
    assert set(manifests) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodMonitor",
        "PodDisruptionBudget",
        "ScaledObject",
        "Kustomization",
    }
    for kind, document in manifests.items():
        assert document["apiVersion"], kind
        if kind != "Kustomization":
            assert document["metadata"]["name"].startswith("sensorstream"), kind


def test_kustomization_lists_every_manifest(manifests: dict[str, dict[str, Any]]) -> None:
    listed = set(manifests["Kustomization"]["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_probes_use_readyz_and_healthz_on_the_metrics_port(
    worker_container: dict[str, Any],
) -> None:
    assert worker_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert worker_container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert worker_container["startupProbe"]["httpGet"]["path"] == "/healthz"
    ports = {port["name"]: port["containerPort"] for port in worker_container["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert worker_container[probe]["httpGet"]["port"] in ports


def test_grace_period_outlasts_the_workers_drain_deadline(
    manifests: dict[str, dict[str, Any]], configmap_toml: str
) -> None:
    grace_s = manifests["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    for source in (configmap_toml, (REPO / "config.toml").read_text()):
        deadline_s = tomllib.loads(source).get("delivery", {}).get("shutdown_deadline_s")
        assert deadline_s is not None
        assert grace_s > deadline_s


def test_configmap_config_is_a_valid_worker_config(
    configmap_toml: str, worker_container: dict[str, Any], tmp_path: Path
) -> None:
    document = tomllib.loads(configmap_toml)
    document.pop("alerts", None)  # checked against AlertRule below
    path = tmp_path / "config.toml"
    path.write_text(_dump_sections(document))
    config = load_config(path, environ={})
    assert config.metrics.host == "0.0.0.0"
    metrics_port = {p["name"]: p["containerPort"] for p in worker_container["ports"]}["metrics"]
    assert config.metrics.port == metrics_port
    assert worker_container["args"] == ["--config", "/app/config.toml"]


def test_configmap_label_alerts_are_valid_and_match_the_prometheus_example(
    configmap_toml: str,
) -> None:
    rules = [AlertRule(**table) for table in tomllib.loads(configmap_toml)["alerts"]]
    check_rules_against_labels(rules, UWAVE_LABELS)
    prometheus_rules = (REPO / "deploy" / "prometheus" / "alerts.yml").read_text()
    assert any(f'rule="{rule.name}"' in prometheus_rules for rule in rules)


def test_keda_scales_the_deployment_on_the_workers_group_and_topic(
    manifests: dict[str, dict[str, Any]], configmap_toml: str
) -> None:
    scaled = manifests["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == manifests["Deployment"]["metadata"]["name"]
    assert isinstance(scaled["maxReplicaCount"], int)
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    (trigger,) = scaled["triggers"]
    kafka = tomllib.loads(configmap_toml)["kafka"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == kafka["group_id"]
    assert trigger["metadata"]["topic"] in kafka["input_topics"]
    assert trigger["metadata"]["bootstrapServers"] == kafka["bootstrap_servers"]
    assert int(trigger["metadata"]["lagThreshold"]) > 0


def test_service_pdb_and_podmonitor_select_the_deployments_pods(
    manifests: dict[str, dict[str, Any]],
) -> None:
    pod_labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selectors = [
        manifests["Service"]["spec"]["selector"],
        manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        manifests["PodMonitor"]["spec"]["selector"]["matchLabels"],
        manifests["Deployment"]["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
    endpoint = manifests["PodMonitor"]["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"


def _dump_sections(document: dict[str, dict[str, Any]]) -> str:
    """TOML text for a dict of flat sections (strings, numbers, lists of strings)."""
    lines: list[str] = []
    for section, values in document.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return repr(value)
