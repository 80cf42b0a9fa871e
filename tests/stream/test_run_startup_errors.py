"""`sensorstream run` refuses to start on bad input with one line that says what to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--set", "model.path=/nonexistent/model"],
            "model.path: model directory /nonexistent/model does not exist",
        ),
        (
            ["--set", "kafka.bootstrap=x"],
            "unknown key kafka.bootstrap (did you mean bootstrap_servers?)",
        ),
        (["--set", "windows.hop=-3"], "windows.hop"),
        (["--set", "model.device=tpu"], 'expected "cpu", "gpu" or "gpu:N"'),
        (["--config", "/nonexistent.toml"], "/nonexistent.toml: config file not found"),
        (["--set", "windows.length=100"], "windows.length: the model at"),
    ],
)
def test_bad_config_or_model_stops_startup_with_one_line(args: list[str], expected: str) -> None:
    result = _run(*args)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sensorstream run: error: ")
    assert expected in last


def test_unknown_alert_label_stops_startup_naming_the_model_labels(tmp_path: Path) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(
        f'[model]\npath = "{REPO / "models" / "uwave"}"\n'
        '[[alerts]]\nname = "falls"\nlabel = "fall"\nmin_score = 0.8\n'
    )
    result = _run("--config", str(config))
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "alerts[0].label: unknown label 'fall'" in last


def test_unreachable_broker_stops_startup_quickly_with_one_line() -> None:
    result = _run("--set", "kafka.bootstrap_servers=127.0.0.1:1", timeout_s=40)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "cannot reach Kafka at 127.0.0.1:1" in last
    assert "sensorstream kafka start" in last
