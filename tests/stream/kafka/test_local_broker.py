"""LocalKafka and `sensorstream kafka`: start, status, stop and the errors users see."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stream.errors import SensorstreamError
from stream.kafka.local_broker import LocalKafka
from stream.kafka.local_broker_lookup import free_port, process_alive, registry_dir


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `sensorstream ...` as users do, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_start_on_a_port_taken_by_another_listener_names_the_port_and_suggests_another(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(SensorstreamError) as caught:
            LocalKafka(port=port, data_dir=tmp_path).start()

    message = str(caught.value)
    assert f"port {port} is taken" in message
    assert "--port" in message
    assert "\n" not in message
    assert not (tmp_path / "broker.pid").exists()


def test_missing_java_is_reported_with_an_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    with pytest.raises(SensorstreamError, match=r"no `java` on PATH: install Java 17\+"):
        LocalKafka(port=free_port(), data_dir=tmp_path / "data").start()


def test_a_stale_pid_file_from_another_program_does_not_count_as_running(tmp_path):
    broker = LocalKafka(port=free_port(), data_dir=tmp_path)
    broker.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a broker of this dir

    assert broker.status() is None


def test_cli_status_on_a_stopped_data_dir_exits_1(tmp_path):
    result = run_cli("kafka", "status", "--port", str(free_port()), "--data-dir", str(tmp_path))

    assert result.returncode == 1
    assert "not running" in result.stdout


@pytest.mark.integration
def test_start_on_a_running_broker_says_so_and_keeps_it(local_kafka):
    again = LocalKafka(port=local_kafka.port, data_dir=local_kafka.data_dir)
    pid_before = local_kafka.status().pid

    assert again.start() is False
    assert again.status().pid == pid_before

    result = run_cli(
        "kafka", "start", "--port", str(local_kafka.port), "--data-dir", str(local_kafka.data_dir)
    )
    assert result.returncode == 0
    assert "already running" in result.stdout
    assert f"bootstrap=127.0.0.1:{local_kafka.port}" in result.stdout


@pytest.mark.integration
def test_cli_status_of_a_running_broker_prints_bootstrap_pid_and_data_dir(local_kafka):
    result = run_cli(
        "kafka", "status", "--port", str(local_kafka.port), "--data-dir", str(local_kafka.data_dir)
    )

    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"bootstrap=127.0.0.1:{local_kafka.port}",
        f"pid={local_kafka.status().pid}",
        f"data_dir={local_kafka.data_dir}",
    ]


@pytest.mark.integration
def test_stop_ends_the_broker_process_and_a_second_stop_is_a_no_op(tmp_path):
    broker = LocalKafka(port=free_port(), data_dir=tmp_path)
    try:
        assert broker.start() is True
        pid = broker.status().pid
        # A separate LocalKafka, as a later `sensorstream kafka stop` would build.
        stopper = LocalKafka(port=broker.port, data_dir=tmp_path)

        assert stopper.stop() is True
        assert not Path(f"/proc/{pid}").exists()
        assert not broker.pid_file.exists()
        assert broker.status() is None
        assert stopper.stop() is False
    finally:
        broker.stop()


@pytest.mark.integration
def test_a_broker_that_dies_during_start_is_reported_with_its_log_tail(tmp_path):
    # -Xmx1m below -Xms256m: the JVM refuses to start, as a broken install would.
    broker = LocalKafka(port=free_port(), data_dir=tmp_path, heap_max_mb=1)

    with pytest.raises(SensorstreamError) as caught:
        broker.start()

    first_line, _, tail = str(caught.value).partition("\n")
    assert "exited during start" in first_line
    assert str(broker.log_file) in first_line
    assert "heap" in tail.lower()
    assert not broker.pid_file.exists()
    assert not (registry_dir() / str(broker.port)).exists()


def test_cli_stop_with_no_broker_on_the_port_exits_1(tmp_path):
    result = run_cli("kafka", "stop", "--port", str(free_port()), "--data-dir", str(tmp_path))

    assert result.returncode == 1
    assert "not running" in result.stdout


@pytest.mark.integration
def test_cli_status_and_stop_find_a_broker_by_port_whatever_its_data_dir(tmp_path):
    port, data_dir = str(free_port()), tmp_path / "own-dir"
    started = run_cli("kafka", "start", "--port", port, "--data-dir", str(data_dir))
    try:
        assert started.returncode == 0, started.stderr
        pid = LocalKafka(port=int(port), data_dir=data_dir).status().pid

        status = run_cli("kafka", "status", "--port", port)
        assert status.returncode == 0, status.stdout
        assert f"data_dir={data_dir}" in status.stdout.splitlines()

        wrong = run_cli("kafka", "status", "--port", port, "--data-dir", str(tmp_path / "other"))
        assert wrong.returncode == 1
        assert f"pass --data-dir {data_dir}" in wrong.stdout

        # A broker the registry does not know (another cache dir, an older start) is
        # found by the process listening on the port.
        (registry_dir() / port).unlink()
        unregistered = run_cli("kafka", "status", "--port", port)
        assert f"data_dir={data_dir}" in unregistered.stdout.splitlines()

        stopped = run_cli("kafka", "stop", "--port", port)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert f"data_dir={data_dir}" in stopped.stdout
        assert not process_alive(pid, None)  # a zombie left for init to reap counts as gone

        again = run_cli("kafka", "stop", "--port", port)
        assert again.returncode == 1
        assert "not running" in again.stdout
    finally:
        LocalKafka(port=int(port), data_dir=data_dir).stop()
