"""`sensorstream demo` (the README's main job) against a real broker, in one process."""

from __future__ import annotations

import re

import pytest

import stream.service
from stream.cli import main
from stream.commands import demo

pytestmark = pytest.mark.integration

FAST = ["--speed", "0", "--devices", "4"]


def test_the_demo_gives_every_uwave_test_window_one_event_and_exits_0(
    kafka_bootstrap: str, uwave_dir, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--bootstrap", kafka_bootstrap, "--data", str(uwave_dir), *FAST]) == 0
    out = capsys.readouterr().out
    assert "events        320 of 320 expected windows (duplicates 0, unexpected 0)" in out
    accuracy = re.search(r"accuracy\s+([0-9.]+) against the UWave test labels", out)
    assert accuracy is not None and float(accuracy.group(1)) > 0.85
    assert "dead letters  0" in out


def test_the_demo_stops_waiting_as_soon_as_its_worker_dies(
    kafka_bootstrap: str,
    uwave_dir,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_build_worker = stream.service.build_worker

    def crashing_worker(*args, **kwargs):
        worker = real_build_worker(*args, **kwargs)

        def crash() -> None:
            raise RuntimeError("injected crash")

        worker.run = crash  # the fault: everything else is the real demo on the real broker
        return worker

    monkeypatch.setattr(stream.service, "build_worker", crashing_worker)
    # without the check on the worker thread the demo would print "gave up waiting" after
    # this timeout instead of the line asserted below
    monkeypatch.setattr(demo, "SETTLE_TIMEOUT_S", 20.0)
    assert main(["demo", "--bootstrap", kafka_bootstrap, "--data", str(uwave_dir), *FAST]) == 1
    out = capsys.readouterr().out
    assert "demo: the worker stopped before every window had its event" in out
    assert "gave up waiting" not in out
    assert "events        0 of 320 expected windows" in out
    assert "p99 < 1 s: NOT met" in out
