"""The live status page at `/`, rendered by a real headless Chromium while a worker runs."""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import orjson
import pytest

from stream.config.schema import AlertRule
from stream.jobs.demo import DeviceStreams
from tests.integration.workers import (
    RunningWorker,
    Topics,
    feeding,
    make_config,
    worker_in_thread,
)

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
START_MS = 1_700_000_000_000
DEVICES = 6
CASES = 30  # 5 windows per device


def paced_stream(
    bootstrap: str, topic: str, streams: DeviceStreams, step_s: float
) -> AbstractContextManager[None]:
    """Produce the streams' records one time step every `step_s`, like live devices."""
    steps = ([(key, value) for key, value, _ in step] for step in streams.steps())
    return feeding(bootstrap, topic, steps, step_s)


def chromium(
    profile: Path, url: str, *mode: str, budget_ms: int = 3000
) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run on `url` that lets the page's JavaScript run for `budget_ms`."""
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *mode,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_for_event_row(profile: Path, url: str, timeout_s: float) -> str:
    """The rendered DOM once the page's script has drawn at least one event row."""
    deadline = time.monotonic() + timeout_s
    dom = ""
    while time.monotonic() < deadline:
        dom = chromium(profile, url, "--dump-dom").stdout
        if 'class="event-row"' in dom:
            return dom
        time.sleep(0.5)
    body = dom.split("<main>")[-1].split("<script>")[0]  # the tables, not the script
    raise AssertionError(f"no event row rendered within {timeout_s:.0f} s; page body:\n{body}")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture
def live_worker(
    kafka_bootstrap, new_topic, shipped_predictor, uwave_test
) -> Iterator[tuple[RunningWorker, Topics]]:
    """A worker consuming a stream that is still being produced while the test looks at it."""
    topics = Topics.fresh(new_topic, partitions=2)
    streams = DeviceStreams(uwave_test.x[:CASES], devices=DEVICES, start_ms=START_MS)
    config = make_config(kafka_bootstrap, topics, "batching.max_wait_ms=50")
    # a rule per label that fires on every window, so the page has alerts to show
    rules = tuple(
        AlertRule(
            name=f"any-{label}", label=label, min_score=0.0, min_consecutive=1, cooldown_s=0.0
        )
        for label in shipped_predictor.manifest.labels
    )
    config = config.model_copy(update={"alerts": rules})
    with worker_in_thread(config, shipped_predictor) as running:
        wait_for_partitions(running, timeout_s=30)
        with paced_stream(kafka_bootstrap, topics.input, streams, step_s=0.04):
            yield running, topics


def wait_for_partitions(running: RunningWorker, timeout_s: float) -> None:
    """Block until the worker owns partitions, so the page is looked at during a real run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if orjson.loads(running.get("/status.json")[1])["partitions"]:
            return
        time.sleep(0.2)
    raise AssertionError(f"the worker owned no partitions after {timeout_s:.0f} s")


def test_status_json_reports_model_partitions_rates_and_latest_event_per_device(
    live_worker,
) -> None:
    running, topics = live_worker
    deadline = time.monotonic() + 60
    status: dict = {}
    while time.monotonic() < deadline:
        status = orjson.loads(running.get("/status.json")[1])
        if len(status["events"]) == DEVICES and status["partitions"]:
            break
        time.sleep(0.3)
    manifest = running.worker.manifest
    assert status["model"]["name"] == manifest.name
    assert status["model"]["version"] == manifest.version
    assert {(p["topic"], p["partition"]) for p in status["partitions"]} == {
        (topics.input, 0),
        (topics.input, 1),
    }
    devices = [e["device_id"] for e in status["events"]]
    assert sorted(devices) == [f"glove-{d:03d}" for d in range(DEVICES)]  # one row per device
    assert all(e["label"] in manifest.labels and 0.0 < e["score"] <= 1.0 for e in status["events"])
    produced = [e["produced_ms"] for e in status["events"]]
    assert produced == sorted(produced, reverse=True)  # newest first
    assert status["totals"]["records"] > 0 and status["rates"]["records_per_s"] > 0
    assert status["alerts"] and {a["rule"] for a in status["alerts"]} <= {
        f"any-{label}" for label in manifest.labels
    }
    status_code, page = running.get("/")
    assert status_code == 200 and b'fetch("status.json"' in page


def test_page_in_headless_chromium_renders_event_rows_and_a_screenshot(
    live_worker, tmp_path
) -> None:
    running, topics = live_worker
    profile = tmp_path / "chromium-profile"
    dom = wait_for_event_row(profile, running.url + "/", timeout_s=60)

    manifest = running.worker.manifest
    assert f"model {manifest.name} {manifest.version}" in dom
    assert "glove-0" in dom
    assert any(f'<span class="label">{label}</span>' in dom for label in manifest.labels)
    assert topics.input in dom  # the assigned partitions table
    assert 'class="alert-row"' in dom

    screenshot = tmp_path / "status.png"
    result = chromium(
        profile, running.url + "/", f"--screenshot={screenshot}", "--window-size=1280,900"
    )
    assert screenshot.is_file(), result.stderr[-2000:]
    assert png_size(screenshot) == (1280, 900)
    assert screenshot.stat().st_size > 10_000  # a blank page compresses to a few hundred bytes
