"""A broker that stops mid-stream and comes back: the worker waits it out and loses nothing."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from stream.jobs.demo import DeviceStreams, produce_streams
from stream.kafka.local_broker import LocalKafka
from stream.kafka.local_broker_lookup import free_port
from tests.integration.workers import (
    EventReader,
    Topics,
    WorkerProcess,
    make_config,
    product_tracebacks,
    worker_in_thread,
    worker_overrides,
)

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000
DOWN_S = 2.0  # with the restart, longer than the flush timeout below: the flush times out
# short client timeouts so an outage is noticed, and ridden out, within seconds
FAST_CLIENTS = (
    "kafka.request_timeout_ms=3000",
    "kafka.fetch_max_wait_ms=100",
    "delivery.producer_flush_timeout_s=1.5",
    "delivery.shutdown_deadline_s=20",
    "delivery.transaction_timeout_ms=10000",
)
MODES = {
    "at-least-once": ('delivery.mode="at-least-once"',),
    "exactly-once": ('delivery.mode="exactly-once"', "delivery.commit_interval_ms=300"),
}


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of this module's own (never the session's): the tests stop and restart it."""
    broker = LocalKafka(port=free_port(), data_dir=tmp_path_factory.mktemp("outage-kafka"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


def _topics(broker: LocalKafka, name: str) -> Topics:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    stem = f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name)[:60]}-{uuid.uuid4().hex[:6]}"
    try:
        admin.create_topics(
            {stem: {"num_partitions": 2, "replication_factor": 1}}, wait_for_metadata=True
        )
    finally:
        admin.close()
    return Topics(stem, f"{stem}.events", f"{stem}.dlq", f"{stem}.alerts", f"{stem}.group")


class _Feed:
    """Streams the devices at a few times real time from a thread; rides out the outage."""

    def __init__(self, bootstrap: str, topic: str, streams: DeviceStreams, speed: float) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
        self.thread = threading.Thread(
            target=produce_streams,
            args=(self.producer, topic, streams, speed, threading.Event()),
            daemon=True,
        )
        self.thread.start()

    def close(self) -> None:
        self.thread.join(timeout=120)
        self.producer.close(timeout=30)


def _windows(reader: EventReader) -> Counter:
    return Counter((e["device_id"], e["window_start_ts"]) for e in reader.events())


def _restart(broker: LocalKafka, down_s: float) -> None:
    broker.stop()
    time.sleep(down_s)
    broker.start()


def _outage_run(
    broker: LocalKafka, uwave_test, predictor, name: str, mode: str, restarts: int
) -> dict:
    """Stream through an in-process worker, restarting the broker `restarts` times."""
    topics = _topics(broker, name)
    streams = DeviceStreams(uwave_test.x[:64], devices=8, start_ms=START_MS)
    expected = set(streams.expected())
    config = make_config(broker.bootstrap, topics, *FAST_CLIENTS, *MODES[mode])
    isolation = "read_committed" if mode == "exactly-once" else "read_uncommitted"
    reader = EventReader(broker.bootstrap, topics.output, isolation_level=isolation)
    seen: dict[str, set] = {"ready": set(), "gauge": set()}
    with worker_in_thread(config, predictor) as running:
        feed = _Feed(broker.bootstrap, topics.input, streams, speed=4.0)
        for restart in range(restarts):
            target = len(expected) * (restart + 1) // (restarts + 2)
            deadline = time.monotonic() + 90
            while len(set(_windows(reader))) < target and time.monotonic() < deadline:
                reader.read(0.2)
            stop_watch = threading.Event()
            watcher = threading.Thread(target=_watch, args=(running, seen, stop_watch), daemon=True)
            watcher.start()
            _restart(broker, DOWN_S)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _ready(running):
                time.sleep(0.3)
            stop_watch.set()
            watcher.join()
        feed.close()
        deadline = time.monotonic() + 120
        while not set(_windows(reader)) >= expected and time.monotonic() < deadline:
            assert running.thread.is_alive(), "the worker stopped during the outage"
            reader.read(0.3)
        alive = running.thread.is_alive()
        deadline = time.monotonic() + 30  # a rejoin after the outage may still be settling
        while not _ready(running) and time.monotonic() < deadline:
            time.sleep(0.3)
        seen["final"] = (_ready(running), _gauge(running), running.get("/readyz")[1])
    reader.read(1.0)
    reader.close()
    return {"counts": _windows(reader), "expected": expected, "alive": alive, "seen": seen}


def _ready(running) -> bool:
    try:
        return running.get("/readyz")[0] == 200
    except OSError:
        return False


def _gauge(running) -> float | None:
    try:
        body = running.get("/metrics")[1].decode()
    except OSError:
        return None
    found = re.search(r"^sensorstream_broker_unreachable_seconds (\S+)$", body, re.M)
    return float(found.group(1)) if found else None


def _watch(running, seen: dict, stop: threading.Event) -> None:
    while not stop.wait(0.25):
        seen["ready"].add(_ready(running))
        seen["gauge"].add(_gauge(running))


@pytest.mark.parametrize(
    ("mode", "restarts"),
    [("at-least-once", 1), ("at-least-once", 2), ("exactly-once", 1), ("exactly-once", 2)],
)
def test_worker_rides_out_broker_restarts_and_emits_every_window(
    own_broker, uwave_test, shipped_predictor, request, mode, restarts
) -> None:
    run = _outage_run(own_broker, uwave_test, shipped_predictor, request.node.name, mode, restarts)
    counts, expected = run["counts"], run["expected"]
    assert run["alive"], "the worker stopped during the outage"
    missing = expected - set(counts)
    assert not missing, f"{len(missing)} of {len(expected)} windows never emitted"
    if mode == "exactly-once":
        assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
    assert False in run["seen"]["ready"], "/readyz stayed ready while the broker was down"
    gauges = {g for g in run["seen"]["gauge"] if g is not None}
    assert any(g > 0 for g in gauges), f"the unreachable gauge never moved: {gauges}"
    ready, gauge, detail = run["seen"]["final"]
    assert ready and gauge == 0.0, f"once back: ready={ready} gauge={gauge} {detail!r}"


def test_outage_past_broker_outage_s_stops_with_one_line_and_commits_nothing_unsafe(
    own_broker, uwave_test, tmp_path
) -> None:
    topics = _topics(own_broker, "deadline")
    streams = DeviceStreams(uwave_test.x[:48], devices=8, start_ms=START_MS)
    expected = set(streams.expected())
    overrides = worker_overrides(
        own_broker.bootstrap,
        topics,
        *FAST_CLIENTS,
        *MODES["exactly-once"],
        'delivery.transactional_id="outage-deadline"',
    )
    reader = EventReader(own_broker.bootstrap, topics.output, isolation_level="read_committed")
    feed = _Feed(own_broker.bootstrap, topics.input, streams, speed=4.0)
    worker = WorkerProcess([*overrides, "delivery.broker_outage_s=4"], tmp_path / "first.log")
    deadline = time.monotonic() + 90
    while len(set(_windows(reader))) < len(expected) // 3 and time.monotonic() < deadline:
        assert worker.alive(), worker.log()[-3000:]
        reader.read(0.2)
    own_broker.stop()
    try:
        code = worker.process.wait(timeout=60)
    finally:
        own_broker.start()
    log = worker.log()
    errors = [line for line in log.splitlines() if line.startswith("sensorstream run: error:")]
    assert code == 2, log[-3000:]
    assert len(errors) == 1 and "delivery.broker_outage_s" in errors[0], errors
    assert not product_tracebacks(log), log[-3000:]
    # what the stopped worker committed must be safe: a fresh run completes the stream
    # with every window exactly once for read_committed readers
    feed.close()
    final = WorkerProcess(overrides, tmp_path / "final.log")
    deadline = time.monotonic() + 120
    while not set(_windows(reader)) >= expected and time.monotonic() < deadline:
        assert final.alive(), final.log()[-3000:]
        reader.read(0.3)
    assert final.terminate(timeout_s=60) == 0
    reader.read(1.0)
    reader.close()
    counts = _windows(reader)
    assert set(counts) == expected, f"{len(expected - set(counts))} windows lost"
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
