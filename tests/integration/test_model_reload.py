"""Hot reload on the real broker: a model swapped in mid-stream keeps every window, once."""

from __future__ import annotations

import re
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from stream.jobs.demo import DeviceStreams
from stream.service import attach_model_reload
from tests.integration.workers import (
    EventReader,
    RunningWorker,
    Topics,
    WorkerProcess,
    make_config,
    produce_device_streams,
    worker_in_thread,
    worker_overrides,
)
from timesnet.manifest import load_manifest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TCN = REPO / "models" / "uwave-tcn"
TIMESNET = REPO / "models" / "uwave"
START_MS = 1_700_000_000_000
MODES = {
    "at-least-once": ('delivery.mode="at-least-once"',),
    "exactly-once": ('delivery.mode="exactly-once"', "delivery.commit_interval_ms=300"),
}


def flip(link: Path, target: Path) -> None:
    """Repoint a symlink atomically (rename a new link over it), as the README says."""
    staged = link.with_name(link.name + ".next")
    staged.unlink(missing_ok=True)
    staged.symlink_to(target)
    staged.replace(link)


def stream_in_background(bootstrap: str, topic: str, streams: DeviceStreams) -> threading.Thread:
    feed = threading.Thread(
        target=produce_device_streams, args=(bootstrap, topic, streams, 4.0), daemon=True
    )
    feed.start()
    return feed


def wait_for_windows(reader: EventReader, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len({(e["device_id"], e["window_start_ts"]) for e in reader.events()}) < count:
        assert time.monotonic() < deadline, f"fewer than {count} windows in {timeout_s:.0f} s"
        reader.read(0.2)


def metric(running: RunningWorker, name: str, labels: str = "") -> float:
    body = running.get("/metrics")[1].decode()
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", body, re.M)
    return float(found.group(1)) if found else float("nan")


def versions_per_device(events: list[dict]) -> dict[str, list[str]]:
    """Each device's model versions in window order."""
    per_device: dict[str, list[tuple[int, str]]] = {}
    for e in events:
        per_device.setdefault(e["device_id"], []).append(
            (e["window_start_ts"], e["model"]["version"])
        )
    return {d: [v for _, v in sorted(rows)] for d, rows in per_device.items()}


def changes(sequence: list[str]) -> list[str]:
    """The distinct runs of a sequence: [a, a, b, b, a] -> [a, b, a]."""
    return [v for i, v in enumerate(sequence) if i == 0 or v != sequence[i - 1]]


@pytest.mark.parametrize("mode", list(MODES))
def test_a_symlink_flip_mid_stream_swaps_the_model_and_keeps_every_window_once(
    kafka_bootstrap, new_topic, uwave_test, tmp_path, mode
) -> None:
    topics = Topics.fresh(new_topic, partitions=2)
    link = tmp_path / "model"
    link.symlink_to(TCN)
    tcn, timesnet = load_manifest(TCN).version, load_manifest(TIMESNET).version
    streams = DeviceStreams(uwave_test.x[:96], devices=8, start_ms=START_MS)
    expected = set(streams.expected())
    config = make_config(
        kafka_bootstrap, topics, f'model.path="{link}"', "model.reload_interval_s=0.2", *MODES[mode]
    )
    isolation = "read_committed" if mode == "exactly-once" else "read_uncommitted"
    reader = EventReader(kafka_bootstrap, topics.output, isolation_level=isolation)
    with worker_in_thread(config, None) as running:
        attach_model_reload(config, running.worker)
        feed = stream_in_background(kafka_bootstrap, topics.input, streams)
        wait_for_windows(reader, len(expected) // 3, 120)
        flip(link, TIMESNET)  # TCN -> the TimesNet ensemble
        deadline = time.monotonic() + 60
        while running.worker.manifest.version != timesnet:
            assert time.monotonic() < deadline, "the new version was never swapped in"
            time.sleep(0.1)
        wait_for_windows(reader, 2 * len(expected) // 3, 120)
        flip(link, TCN)  # and back
        feed.join(120)
        wait_for_windows(reader, len(expected), 120)
        reloads_ok = metric(running, "sensorstream_model_reloads_total", '{result="ok"}')
        served = running.get("/metrics")[1].decode()
    reader.read(1.0)
    reader.close()
    events = reader.events()
    counts = Counter((e["device_id"], e["window_start_ts"]) for e in events)
    assert set(counts) == expected
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
    assert {e["model"]["version"] for e in events} == {tcn, timesnet}
    # each device moves forward through the two swaps (TCN, TimesNet, TCN again) and never
    # back: a window classified after a swap is never followed by one from before it
    forward = [[tcn], [tcn, timesnet], [tcn, timesnet, tcn], [timesnet], [timesnet, tcn]]
    for device, versions in versions_per_device(events).items():
        assert changes(versions) in forward, (device, changes(versions))
    assert reloads_ok == 2.0
    info = re.findall(r'^sensorstream_model_info\{.*version="([^"]+)".*\} 1\.0$', served, re.M)
    assert info == [tcn]  # the served model only


def test_a_broken_model_directory_is_refused_and_the_served_model_goes_on(
    kafka_bootstrap, new_topic, uwave_test, tmp_path
) -> None:
    topics = Topics.fresh(new_topic, partitions=1)
    link = tmp_path / "model"
    link.symlink_to(TCN)
    broken = tmp_path / "broken"
    shutil.copytree(TIMESNET, broken)
    params = broken / "model.pdiparams"
    data = bytearray(params.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the manifest's checksum no longer matches
    params.write_bytes(bytes(data))
    streams = DeviceStreams(uwave_test.x[:48], devices=4, start_ms=START_MS)
    expected = set(streams.expected())
    config = make_config(
        kafka_bootstrap, topics, f'model.path="{link}"', "model.reload_interval_s=0.2"
    )
    reader = EventReader(kafka_bootstrap, topics.output)
    with worker_in_thread(config, None) as running:
        attach_model_reload(config, running.worker)
        feed = stream_in_background(kafka_bootstrap, topics.input, streams)
        wait_for_windows(reader, len(expected) // 3, 120)
        flip(link, broken)
        deadline = time.monotonic() + 60
        while metric(running, "sensorstream_model_reloads_total", '{result="refused"}') != 1.0:
            assert time.monotonic() < deadline, "the broken directory was never refused"
            time.sleep(0.2)
        feed.join(120)
        wait_for_windows(reader, len(expected), 120)
        time.sleep(1.0)  # several more checks of the same broken directory
        refused = metric(running, "sensorstream_model_reloads_total", '{result="refused"}')
        ok = metric(running, "sensorstream_model_reloads_total", '{result="ok"}')
    reader.read(1.0)
    reader.close()
    events = reader.events()
    assert {(e["device_id"], e["window_start_ts"]) for e in events} == expected
    assert {e["model"]["version"] for e in events} == {load_manifest(TCN).version}
    assert (refused, ok) == (1.0, 0.0)  # refused once, not at every check


def test_sighup_reloads_at_once_when_periodic_checks_are_off(
    kafka_bootstrap, new_topic, uwave_test, tmp_path
) -> None:
    topics = Topics.fresh(new_topic, partitions=1)
    link = tmp_path / "model"
    link.symlink_to(TCN)
    streams = DeviceStreams(uwave_test.x[:48], devices=4, start_ms=START_MS)
    expected = set(streams.expected())
    overrides = worker_overrides(
        kafka_bootstrap, topics, f'model.path="{link}"', "model.reload_interval_s=0"
    )
    reader = EventReader(kafka_bootstrap, topics.output)
    worker = WorkerProcess(overrides, tmp_path / "worker.log")
    try:
        feed = stream_in_background(kafka_bootstrap, topics.input, streams)
        wait_for_windows(reader, len(expected) // 3, 120)
        flip(link, TIMESNET)
        time.sleep(1.0)  # no periodic check: nothing may happen without the signal
        assert "model reloaded" not in worker.log()
        worker.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while "model reloaded" not in worker.log():
            assert worker.alive() and time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.1)
        feed.join(120)
        wait_for_windows(reader, len(expected), 120)
    finally:
        code = worker.terminate(timeout_s=60)
    assert code == 0, worker.log()[-3000:]
    reader.read(1.0)
    reader.close()
    events = reader.events()
    counts = Counter((e["device_id"], e["window_start_ts"]) for e in events)
    assert set(counts) == expected and max(counts.values()) == 1
    tcn, timesnet = load_manifest(TCN).version, load_manifest(TIMESNET).version
    for device, versions in versions_per_device(events).items():
        assert changes(versions) in ([tcn, timesnet], [tcn], [timesnet]), device
    assert {e["model"]["version"] for e in events} == {tcn, timesnet}
