"""Nothing lost: SIGKILL and restart, a group of two losing one, SIGTERM's drain and commit."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from stream.core.offsets import CommitMetadata
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


def _window_keys(events: list[dict]) -> Counter:
    return Counter((e["device_id"], e["window_start_ts"]) for e in events)


def _wait_until(
    predicate, timeout_s: float, what: str, worker: WorkerProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if worker is not None and not worker.alive():
            raise AssertionError(f"worker exited while waiting for {what}:\n{worker.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize("hop", [315, 100], ids=["tumbling", "overlapping"])
def test_sigkill_mid_stream_then_restart_loses_no_window(
    kafka_bootstrap, new_topic, uwave_test, tmp_path, record_property, hop
) -> None:
    topics = Topics.fresh(new_topic, partitions=3)
    cases = uwave_test.x if hop == 315 else uwave_test.x[:96]
    streams = DeviceStreams(cases, devices=12, start_ms=START_MS)
    produce_device_streams(kafka_bootstrap, topics.input, streams)
    # small batches and a slow commit interval leave plenty in flight at the kill
    overrides = worker_overrides(
        kafka_bootstrap,
        topics,
        "batching.max_batch=4",
        "delivery.commit_interval_ms=500",
        f"windows.hop={hop}",
    )
    reader = EventReader(kafka_bootstrap, topics.output)
    first = WorkerProcess(overrides, tmp_path / "first.log")
    _wait_until(
        lambda: len(reader.read(0.2)) >= 0 and len(reader.records) >= 60,
        120,
        "the first events",
        first,
    )
    first.kill()
    seen_before_restart = len(reader.records)

    second = WorkerProcess(overrides, tmp_path / "second.log")
    expected = streams.window_starts(hop)
    _wait_until(
        lambda: (
            reader.read(0.2) is not None and set(_window_keys(reader.events())) >= set(expected)
        ),
        180,
        "every expected window",
        second,
    )
    assert second.terminate(timeout_s=60) == 0
    reader.read(1.0)
    reader.close()

    counts = _window_keys(reader.events())
    assert set(counts) == set(expected), "events for windows that were never expected"
    duplicates = sum(n - 1 for n in counts.values())
    record_property("events_before_kill", seen_before_restart)
    record_property("duplicates_after_restart", duplicates)
    print(
        f"sigkill restart: {seen_before_restart} events before the kill, "
        f"{duplicates} duplicate events of {len(expected)} windows"
    )
    assert duplicates < len(expected)


def test_two_workers_share_partitions_and_the_survivor_takes_over_after_sigkill(
    kafka_bootstrap, new_topic, uwave_test, tmp_path, record_property
) -> None:
    topics = Topics.fresh(new_topic, partitions=4)
    streams = DeviceStreams(uwave_test.x, devices=16, start_ms=START_MS)
    overrides = worker_overrides(kafka_bootstrap, topics, "batching.max_batch=8")
    reader = EventReader(kafka_bootstrap, topics.output)
    a = WorkerProcess(overrides, tmp_path / "a.log")
    b = WorkerProcess(overrides, tmp_path / "b.log")
    _wait_until(
        lambda: "partitions assigned" in a.log() and "partitions assigned" in b.log(),
        90,
        "both workers to own partitions",
        a,
    )
    _wait_until(
        lambda: _assigned_count(a.log()) + _assigned_count(b.log()) >= 4,
        60,
        "all four partitions to be shared",
    )
    assert _assigned_count(a.log()) >= 1 and _assigned_count(b.log()) >= 1

    feeder = threading.Thread(
        target=produce_device_streams,
        args=(kafka_bootstrap, topics.input, streams, 20.0),
        daemon=True,
    )
    feeder.start()
    _wait_until(
        lambda: reader.read(0.2) is not None and len(reader.records) >= 40,
        120,
        "events from the pair",
    )
    a.kill()
    feeder.join(timeout=120)
    expected = streams.expected()
    _wait_until(
        lambda: (
            reader.read(0.2) is not None and set(_window_keys(reader.events())) >= set(expected)
        ),
        180,
        "the survivor to cover every window",
        b,
    )
    assert b.terminate(timeout_s=60) == 0
    reader.close()
    counts = _window_keys(reader.events())
    assert set(counts) == set(expected)
    record_property("duplicates_after_takeover", sum(n - 1 for n in counts.values()))


def _assigned_count(log: str) -> int:
    """Partitions named in the last 'partitions assigned' line of a worker log."""
    lines = [line for line in log.splitlines() if "partitions assigned" in line]
    return lines[-1].count("[") if lines else 0


def test_sigterm_exits_zero_within_the_deadline_and_commits_what_it_emitted(
    kafka_bootstrap, new_topic, uwave_test, tmp_path
) -> None:
    topics = Topics.fresh(new_topic, partitions=2)
    streams = DeviceStreams(uwave_test.x[:40], devices=8, start_ms=START_MS)
    produce_device_streams(kafka_bootstrap, topics.input, streams)
    deadline_s = 20.0
    overrides = worker_overrides(
        kafka_bootstrap,
        topics,
        f"delivery.shutdown_deadline_s={deadline_s}",
        "delivery.commit_interval_ms=60000",  # only the shutdown commit can cover the events
    )
    reader = EventReader(kafka_bootstrap, topics.output)
    worker = WorkerProcess(overrides, tmp_path / "worker.log")
    _wait_until(
        lambda: reader.read(0.2) is not None and len(reader.records) >= 40,
        120,
        "all 40 events",
        worker,
    )
    started = time.monotonic()
    assert worker.terminate(timeout_s=deadline_s + 10) == 0, worker.log()[-3000:]
    assert time.monotonic() - started < deadline_s
    reader.close()

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=topics.group, enable_auto_commit=False
    )
    try:
        parts = [TopicPartition(topics.input, p) for p in range(2)]
        ends = consumer.end_offsets(parts)
        events = reader.events()
        for tp in parts:
            committed = consumer.committed(tp, metadata=True)
            assert committed is not None, f"nothing committed for {tp}"
            emitted = [
                e["source"]["last_offset"]
                for e in events
                if e["source"]["partition"] == tp.partition
            ]
            # every window is complete, so nothing holds the commit back: it covers all of them
            assert committed.offset == ends[tp]
            assert max(emitted) < committed.offset
            assert CommitMetadata.decode(committed.metadata).emitted_through == ends[tp] - 1
    finally:
        consumer.close()


def test_sigterm_while_the_worker_starts_exits_zero(kafka_bootstrap, new_topic, tmp_path) -> None:
    topics = Topics.fresh(new_topic, partitions=1)
    worker = WorkerProcess(worker_overrides(kafka_bootstrap, topics), tmp_path / "worker.log")
    deadline = time.monotonic() + 60
    # the model is loaded; topics, the HTTP server and the worker itself are not yet up
    while "predictor loaded" not in worker.log():
        assert worker.alive() and time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.01)
    code = worker.terminate(timeout_s=60)
    log = worker.log()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log
    assert "worker stopped" in log
