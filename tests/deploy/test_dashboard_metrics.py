"""Every metric the dashboard and the alert rules query is one the worker exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from stream.core.metrics import WorkerMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "sensorstream.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

# Series Prometheus writes itself, not the worker.
PROMETHEUS_SERIES = {"up"}
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
}
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$instance": ".*"}


def exported_series() -> set[str]:
    """Sample names the worker's /metrics shows once every labelled metric has a child."""
    metrics = WorkerMetrics(CollectorRegistry())
    for optional in metrics.optional:  # e.g. the drift gauges, shown once they have a value
        metrics.show(optional)
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase) and metric._labelnames:
            metric.labels(**{name: "x" for name in metric._labelnames})
    text = generate_latest(metrics.registry).decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def dashboard_expressions() -> list[str]:
    """Every PromQL expression in the dashboard's panels and template queries."""
    document = json.loads(DASHBOARD.read_text())
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document.get("panels", []))
    for variable in document["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else None
        if text and text.startswith("label_values("):
            found.append(text[len("label_values(") :].split(",")[0])
    return found


def alert_expressions() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def metric_names(expression: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names, label values or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # label values and strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = re.findall(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()", text)
    return {name for name in names if name.lower() not in PROMQL_WORDS}


def test_the_name_extraction_finds_metrics_and_nothing_else() -> None:
    expression = (
        'histogram_quantile(0.99, sum by (le, job) (rate(a_seconds_bucket{x="y z"}[5m]))) > 2'
        " and on (job) sum without (topic) (b_total offset 5m) / ignoring(x) up"
    )
    assert metric_names(expression) == {"a_seconds_bucket", "b_total", "up"}


def test_the_dashboard_and_the_rules_query_something() -> None:
    assert len(dashboard_expressions()) >= 20
    assert len(alert_expressions()) >= 7


@pytest.mark.parametrize("source", ["dashboard", "alert rules"])
def test_every_queried_metric_is_exported_by_the_worker(source: str) -> None:
    expressions = dashboard_expressions() if source == "dashboard" else alert_expressions()
    queried = set().union(*(metric_names(e) for e in expressions)) - PROMETHEUS_SERIES
    assert queried, "no metric names found"
    missing = queried - exported_series()
    assert not missing, f"{source} query metrics the worker does not export: {sorted(missing)}"


def test_the_dashboard_covers_every_worker_metric_family() -> None:
    queried = set().union(*(metric_names(e) for e in dashboard_expressions()))
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in queried}
    exported = {
        re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in exported_series()
    }
    # commits are an internal pacing detail; everything else is on a panel
    assert exported - families == {"sensorstream_commits"}


def test_dashboard_expressions_parse_as_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: run scripts/setup.sh --dev"
    rules = []
    for index, expression in enumerate(dashboard_expressions()):
        for variable, value in GRAFANA_VARIABLES.items():
            expression = expression.replace(variable, value)
        rules.append({"record": f"dashboard:expr_{index}", "expr": expression})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_grafana_json_with_a_datasource_variable() -> None:
    document = json.loads(DASHBOARD.read_text())
    assert document["schemaVersion"] >= 36
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    panel_ids = [panel["id"] for panel in document["panels"]]
    assert len(panel_ids) == len(set(panel_ids))
    for panel in document["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
