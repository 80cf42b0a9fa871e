"""`sensorstream run` refuses to start on bad input with one line that says what to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(
    *args: str, timeout_s: float = 60, command: str = "run"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", command, *args],
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
        (
            ["--set", 'kafka.bootstrap_servers="127.0.0.1:abc"'],
            "kafka.bootstrap_servers: expected host:port[,host:port...] with ports 1-65535",
        ),
        (
            ["--set", "windows.max_devices=1000000000000"],
            "windows.max_devices: expected an integer <= 100000000",
        ),
        (
            ["--set", "windows.hop=100000000000000000000000"],
            "windows.hop: expected an integer <= 2147483647",
        ),
        (
            [
                "--set",
                'kafka.security_protocol="SSL"',
                "--set",
                f'kafka.ssl_cafile="{REPO / "config.toml"}"',
            ],
            "kafka.ssl_cafile: " + str(REPO / "config.toml") + " holds no PEM certificate",
        ),
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


def test_replay_from_beyond_any_time_is_one_line_naming_the_range() -> None:
    result = _run("--from", "99999999999999999999999", command="replay")
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sensorstream replay: error: --from '99999999999999999999999': ")
    assert "expected a time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z" in last


def test_replay_topic_that_kafka_would_refuse_is_one_line_naming_the_flag() -> None:
    result = _run("--from", "earliest", "--topics", "sensor samples", command="replay")
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "sensorstream replay: error: --topics: expected Kafka topic names "
        "(1-249 of A-Z a-z 0-9 . _ -), not 'sensor samples'"
    )


@pytest.mark.integration
def test_replay_checks_the_windows_against_the_model_as_run_does(
    kafka_bootstrap, new_topic, produce
) -> None:
    topic = new_topic()
    produce(kafka_bootstrap, topic, [(b"d1", b"{}")])
    result = _run(
        "--set",
        f'kafka.bootstrap_servers="{kafka_bootstrap}"',
        "--set",
        "windows.length=100",
        "--set",
        "windows.hop=100",
        "--topics",
        topic,
        "--from",
        "earliest",
        command="replay",
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "windows.length: the model at" in last
