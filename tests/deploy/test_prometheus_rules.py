"""The Prometheus config and alert rules pass promtool's checks and unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    """Path of promtool; scripts/setup.sh --dev installs it (Debian's `prometheus` package)."""
    found = shutil.which("promtool")
    assert found, (
        "promtool not found: run scripts/setup.sh --dev (installs Debian's prometheus package)"
    )
    return found


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_alert_rules_pass_promtool_check_rules(promtool: str) -> None:
    result = run_promtool(promtool, "check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_prometheus_config_passes_promtool_check_config(promtool: str) -> None:
    result = run_promtool(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_every_alert_rule_has_a_passing_unit_test(promtool: str) -> None:
    result = run_promtool(promtool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    rules = set(_names(PROMETHEUS_DIR / "alerts.yml", "- alert: "))
    tested = set(_names(PROMETHEUS_DIR / "alerts_test.yml", "alertname: "))
    assert rules == tested, f"rules without a unit test: {sorted(rules - tested)}"


def _names(path: Path, marker: str) -> list[str]:
    return [
        line.split(marker, 1)[1].strip()
        for line in path.read_text().splitlines()
        if marker in line and not line.lstrip().startswith("#")
    ]
