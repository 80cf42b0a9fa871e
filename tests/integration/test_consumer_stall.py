"""A worker whose rebalance kafka-python strands rejoins: by itself, or through the watchdog.

The strand, as seen in 2 of ~30 bench runs: the leader's metadata snapshot
differs from the one it assigned with, so the next poll revokes to rejoin; the
revoke listener outlasts the poll's timeout, and before the next poll the
snapshots are equal again (the unawaited join's own assignment makes them so),
so the JoinGroup's result is never read and the member sits REBALANCING with
nothing assigned. The tests set the snapshots the way that sequence leaves them
(kafka-python internals: the broker's timing cannot be ordered on demand) and
keep everything else real.
"""

from __future__ import annotations

import threading
import time

import pytest

import stream.kafka.rebalance
from stream.jobs.demo import DeviceStreams
from tests.integration.workers import (
    EventReader,
    RunningWorker,
    Topics,
    feeding,
    make_config,
    worker_in_thread,
)

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000


def _steps(streams: DeviceStreams) -> list[list[tuple[bytes, bytes]]]:
    return [[(key, value) for key, value, _ in step] for step in streams.steps()]


def _strand_next_rebalance(running: RunningWorker, topic: str) -> None:
    """Make the worker's next poll revoke on a stale snapshot that is restored mid-listener."""
    worker = running.worker
    coordinator = worker.consumer._coordinator
    assigned_with = coordinator._metadata_snapshot
    revoke = worker.checkpoint.partitions.revoked

    def revoke_while_metadata_arrives(revoked: list) -> None:
        revoke(revoked)
        coordinator._metadata_snapshot = assigned_with  # equal again before the next poll
        time.sleep(0.3)  # the listener outlasts the poll's timeout (13 s in the bench)
        worker.checkpoint.partitions.revoked = revoke

    worker.checkpoint.partitions.revoked = revoke_while_metadata_arrives
    coordinator._metadata_snapshot = {topic: set()}  # differs from the assigned-with one


def _wait_for_records(running: RunningWorker, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while running.worker.stats.records < count:
        assert time.monotonic() < deadline, "the worker read nothing"
        time.sleep(0.05)


def _stalls(running: RunningWorker) -> float:
    _, body = running.get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith("sensorstream_consumer_stalls_total "):
            return float(line.split()[1])
    raise AssertionError("sensorstream_consumer_stalls_total is not exported")


class _ReadyzRecorder:
    """Polls /readyz on a thread and keeps every answer that was not 200."""

    def __init__(self, running: RunningWorker) -> None:
        self.failures: list[bytes] = []
        self._stop = threading.Event()
        self._running = running
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            status, body = self._running.get("/readyz")
            if status != 200:
                self.failures.append(body)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _stream_around_a_strand(
    kafka_bootstrap, new_topic, predictor, uwave_test, *extra: str
) -> tuple[set, float, list[bytes]]:
    """Windows missing, stalls counted and /readyz failures, streaming across a strand."""
    topics = Topics.fresh(new_topic, partitions=1)
    streams = DeviceStreams(uwave_test.x[:48], devices=4, start_ms=START_MS)
    config = make_config(kafka_bootstrap, topics, "kafka.max_poll_interval_ms=20000", *extra)
    reader = EventReader(kafka_bootstrap, topics.output)
    expected = set(streams.expected())
    with (
        worker_in_thread(config, predictor) as running,
        feeding(kafka_bootstrap, topics.input, _steps(streams), step_s=0.02),
    ):
        _wait_for_records(running, 20, timeout_s=60)
        generation = running.worker.consumer.group_metadata().generation_id
        readyz = _ReadyzRecorder(running)
        _strand_next_rebalance(running, topics.input)
        events = reader.wait_for(len(expected), timeout_s=60)
        readyz.stop()
        assert running.worker.consumer.group_metadata().generation_id > generation
        stalls = _stalls(running)
    reader.close()
    seen = {(e["device_id"], e["window_start_ts"]) for e in events}
    return expected - seen, stalls, readyz.failures


def test_revocation_on_a_snapshot_restored_mid_listener_still_rejoins(
    kafka_bootstrap, new_topic, shipped_predictor, uwave_test
) -> None:
    missing, stalls, not_ready = _stream_around_a_strand(
        kafka_bootstrap, new_topic, shipped_predictor, uwave_test, "kafka.stall_timeout_s=600"
    )
    assert not missing
    assert stalls == 0  # the listener's rejoin request did it, not the watchdog
    assert not [body for body in not_ready if b"stalled" in body]


def test_watchdog_fails_readyz_counts_and_rejoins_a_stranded_consumer(
    kafka_bootstrap, new_topic, shipped_predictor, uwave_test, monkeypatch
) -> None:
    monkeypatch.setattr(stream.kafka.rebalance, "request_rejoin", lambda consumer: None)
    missing, stalls, not_ready = _stream_around_a_strand(
        kafka_bootstrap, new_topic, shipped_predictor, uwave_test, "kafka.stall_timeout_s=3"
    )
    assert not missing
    assert stalls == 1
    assert any(b"consumer stalled: no partitions assigned" in body for body in not_ready)


@pytest.mark.parametrize("partitions", [1, 2])
def test_a_fresh_workers_first_assignment_is_not_revoked_at_once(
    kafka_bootstrap, new_topic, shipped_predictor, partitions
) -> None:
    topics = Topics.fresh(new_topic, partitions=partitions)
    config = make_config(kafka_bootstrap, topics)
    with worker_in_thread(config, shipped_predictor) as running:
        deadline = time.monotonic() + 30
        while not running.worker.offsets.assigned_sources:
            assert time.monotonic() < deadline, "no partitions assigned"
            time.sleep(0.05)
        time.sleep(3)  # past the metadata responses that follow a join
        membership = running.worker.consumer.group_metadata()
        owned = len(running.worker.offsets.assigned_sources)
    assert (membership.generation_id, owned) == (1, partitions)
