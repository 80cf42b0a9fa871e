"""[delivery] mode = "exactly-once": crashes and rebalances never duplicate nor lose a window."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from stream.jobs.demo import DeviceStreams
from tests.integration.workers import (
    EventReader,
    Topics,
    WorkerProcess,
    produce_device_streams,
    worker_overrides,
)

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000
EXACTLY_ONCE = ('delivery.mode="exactly-once"', "delivery.commit_interval_ms=300")


def _windows(reader: EventReader) -> Counter:
    return Counter((e["device_id"], e["window_start_ts"]) for e in reader.events())


def _read_until_complete(
    reader: EventReader, expected: set, timeout_s: float, worker: WorkerProcess
) -> None:
    deadline = time.monotonic() + timeout_s
    while not set(_windows(reader)) >= expected:
        if not worker.alive():
            raise AssertionError(f"worker exited:\n{worker.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(set(_windows(reader)))} of {len(expected)} windows")
        reader.read(0.3)


def test_repeated_sigkills_leave_every_window_exactly_once_for_read_committed_readers(
    kafka_bootstrap, new_topic, uwave_test, tmp_path, record_property
) -> None:
    topics = Topics.fresh(new_topic, partitions=3)
    streams = DeviceStreams(uwave_test.x, devices=12, start_ms=START_MS)
    produce_device_streams(kafka_bootstrap, topics.input, streams)
    overrides = worker_overrides(
        kafka_bootstrap,
        topics,
        *EXACTLY_ONCE,
        "batching.max_batch=4",
        'delivery.transactional_id="eos-crash-test"',
    )
    committed = EventReader(kafka_bootstrap, topics.output, isolation_level="read_committed")
    uncommitted = EventReader(kafka_bootstrap, topics.output)
    chooser = random.Random(7)
    kills = []
    for attempt in range(3):
        worker = WorkerProcess(overrides, tmp_path / f"run{attempt}.log")
        target = len(uncommitted.records) + chooser.randint(10, 50)
        deadline = time.monotonic() + 120
        while len(uncommitted.records) < target and time.monotonic() < deadline and worker.alive():
            uncommitted.read(0.1)
        time.sleep(chooser.uniform(0.0, 0.4))  # land anywhere inside a transaction
        worker.kill()
        kills.append(len(uncommitted.records))
    final = WorkerProcess(overrides, tmp_path / "final.log")
    expected = set(streams.expected())
    _read_until_complete(committed, expected, 180, final)
    assert final.terminate(timeout_s=60) == 0
    committed.read(1.0)
    uncommitted.read(0.5)
    committed.close()
    uncommitted.close()

    counts = _windows(committed)
    assert set(counts) == expected
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
    aborted = len(uncommitted.records) - len(committed.records)
    record_property("uncommitted_records_written_by_killed_workers", kills)
    record_property("aborted_event_records", aborted)
    print(
        f"exactly-once: kills after {kills} uncommitted event records; {aborted} aborted records; "
        f"{len(committed.records)} committed events"
    )


def test_a_rebalance_between_two_exactly_once_workers_keeps_every_window_exactly_once(
    kafka_bootstrap, new_topic, uwave_test, tmp_path
) -> None:
    topics = Topics.fresh(new_topic, partitions=4)
    streams = DeviceStreams(uwave_test.x, devices=16, start_ms=START_MS)
    base = worker_overrides(kafka_bootstrap, topics, *EXACTLY_ONCE, "batching.max_batch=8")
    committed = EventReader(kafka_bootstrap, topics.output, isolation_level="read_committed")
    first = WorkerProcess([*base, 'delivery.transactional_id="eos-a"'], tmp_path / "a.log")
    feeder = threading.Thread(
        target=produce_device_streams,
        args=(kafka_bootstrap, topics.input, streams, 15.0),
        daemon=True,
    )
    feeder.start()
    deadline = time.monotonic() + 120
    while len(committed.records) < 40 and time.monotonic() < deadline:
        committed.read(0.2)
    # a second worker joins: the group rebalances while the stream flows
    second = WorkerProcess([*base, 'delivery.transactional_id="eos-b"'], tmp_path / "b.log")
    deadline = time.monotonic() + 60
    while "partitions assigned" not in second.log() and time.monotonic() < deadline:
        committed.read(0.2)
    assert "partitions assigned" in second.log(), second.log()[-2000:]
    feeder.join(timeout=120)
    _read_until_complete(committed, set(streams.expected()), 180, second)
    assert first.terminate(timeout_s=60) == 0
    assert second.terminate(timeout_s=60) == 0
    committed.read(1.0)
    committed.close()
    counts = _windows(committed)
    assert set(counts) == set(streams.expected())
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
