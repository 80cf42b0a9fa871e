"""Running real workers against the test broker: in this process, or as a child process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from stream.config.loading import load_config
from stream.config.schema import Config
from stream.core.worker import Worker
from stream.jobs.demo import DeviceStreams, produce_streams
from stream.service import build_worker, start_http

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = Path(os.environ.get("SENSORSTREAM_TEST_MODEL", REPO / "models" / "uwave"))


@dataclass(frozen=True)
class Topics:
    """The topics of one worker test."""

    input: str
    output: str
    dead_letters: str
    alerts: str
    group: str

    @staticmethod
    def fresh(new_topic: object, partitions: int = 1) -> Topics:
        """An input topic with `partitions` and fresh names for the rest."""
        name = new_topic(partitions)  # type: ignore[operator]
        return Topics(name, f"{name}.events", f"{name}.dlq", f"{name}.alerts", f"{name}.group")


def worker_overrides(bootstrap: str, topics: Topics, *extra: str) -> list[str]:
    """--set values that point a worker at the test broker and topics."""
    return [
        f'kafka.bootstrap_servers="{bootstrap}"',
        f'kafka.input_topics=["{topics.input}"]',
        f'kafka.output_topic="{topics.output}"',
        f'kafka.dead_letter_topic="{topics.dead_letters}"',
        f'kafka.alerts_topic="{topics.alerts}"',
        f'kafka.group_id="{topics.group}"',
        "kafka.session_timeout_ms=6000",
        f'model.path="{SHIPPED_MODEL}"',
        "metrics.port=0",
        "delivery.commit_interval_ms=200",
        *extra,
    ]


def make_config(bootstrap: str, topics: Topics, *extra: str) -> Config:
    """A validated worker config for a test."""
    return load_config(None, worker_overrides(bootstrap, topics, *extra), environ={})


@dataclass
class RunningWorker:
    """An in-process worker on its own thread, with its HTTP server."""

    worker: Worker
    url: str
    thread: threading.Thread

    def get(self, path: str) -> tuple[int, bytes]:
        """GET a path of the worker's HTTP server."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


@contextmanager
def worker_in_thread(config: Config, predictor: object) -> Iterator[RunningWorker]:
    """Run a worker until the block ends, then stop it and wait for its drain."""
    worker = build_worker(config, predictor=predictor)
    server = start_http(config, worker)
    thread = threading.Thread(target=worker.run, name="test-worker", daemon=True)
    thread.start()
    try:
        yield RunningWorker(worker, server.url, thread)
    finally:
        worker.request_stop()
        thread.join(timeout=60)
        server.stop()
        assert not thread.is_alive(), "worker did not stop within 60 s"


class WorkerProcess:
    """`sensorstream run` as a child process (for SIGKILL and SIGTERM tests)."""

    def __init__(self, overrides: list[str], log_path: Path) -> None:
        self.log_path = log_path
        args = [sys.executable, "-m", "stream.cli", "--log-level", "INFO", "run"]
        for item in overrides:
            args += ["--set", item]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORSTREAM__")}
        self._log = open(log_path, "ab")  # noqa: SIM115 (closed in wait/kill)
        self.process = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )

    def kill(self) -> None:
        """SIGKILL: no drain, no commit, like a crash."""
        self.process.kill()
        self.process.wait(timeout=30)
        self._log.close()

    def terminate(self, timeout_s: float) -> int:
        """SIGTERM and wait; returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self._log.close()

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def log(self) -> str:
        """Everything the worker wrote."""
        return self.log_path.read_text(errors="replace")


def produce_device_streams(
    bootstrap: str, topic: str, streams: DeviceStreams, speed: float = 0.0
) -> None:
    """Send every record of `streams` to `topic` (paced at `speed` x real time; 0 = at once)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    try:
        produce_streams(producer, topic, streams, speed, threading.Event())
    finally:
        producer.close()


@contextmanager
def feeding(
    bootstrap: str, topic: str, steps: Iterable[list[tuple[bytes, bytes]]], step_s: float
) -> Iterator[None]:
    """Produce one step of (key, value) records every `step_s` on a thread, like live
    devices, until the steps run out or the block ends."""
    stop = threading.Event()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)

    def feed() -> None:
        for step in steps:
            if stop.is_set():
                return
            for key, value in step:
                producer.send(topic, key=key, value=value)
            producer.flush()
            stop.wait(step_s)

    thread = threading.Thread(target=feed, name="feeding", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
        producer.close(timeout=10)


class EventReader:
    """Reads a topic from the beginning, incrementally, without a group."""

    def __init__(
        self, bootstrap: str, topic: str, isolation_level: str = "read_uncommitted"
    ) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=isolation_level,
        )
        self.topic = topic
        self.records: list = []
        self._assigned = False

    def _assign(self) -> bool:
        parts = self.consumer.partitions_for_topic(self.topic)
        if not parts:
            return False
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self._assigned = True
        return True

    def read(self, timeout_s: float = 0.5) -> list:
        """New records that arrived within `timeout_s`."""
        if not self._assigned and not self._assign():
            time.sleep(timeout_s)
            return []
        got = []
        for batch in self.consumer.poll(timeout_ms=int(timeout_s * 1000)).values():
            got.extend(batch)
        self.records.extend(got)
        return got

    def events(self) -> list[dict]:
        """Every record read so far, parsed as JSON."""
        return [orjson.loads(r.value) for r in self.records]

    def wait_for_records(self, count: int, timeout_s: float) -> list:
        """Read until `count` records or the timeout; returns the raw records."""
        deadline = time.monotonic() + timeout_s
        while len(self.records) < count and time.monotonic() < deadline:
            self.read(0.3)
        return self.records

    def wait_for(self, count: int, timeout_s: float) -> list[dict]:
        """Read until `count` records or the timeout; returns the parsed events."""
        self.wait_for_records(count, timeout_s)
        return self.events()

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()


def product_tracebacks(log: str) -> list[str]:
    """Tracebacks in a worker's log that pass through sensorstream's own code.

    kafka-python logs some socket errors with their traceback (a connection reset
    while the broker goes away); those are the library's log lines, not a crash.
    """
    blocks = re.split(r"(?m)^(?=\S)", log)
    return [
        block
        for block in blocks
        if block.startswith("Traceback") and re.search(r"/(stream|windows|timesnet)/", block)
    ]
