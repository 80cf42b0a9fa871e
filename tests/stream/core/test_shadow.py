"""The shadow model never holds up the primary, and its agreement is counted per window."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import orjson
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from stream.config.schema import Config, KafkaConfig
from stream.core.event_output import EventOutput
from stream.core.metrics import WorkerMetrics
from stream.core.offsets import OffsetTracker
from stream.core.shadow import ShadowBatch, ShadowRunner
from stream.core.stats import WorkerStats
from stream.core.status_board import StatusBoard
from tests.stream.rows import make_rows

LABELS = ("a", "b", "c")


class GatedModel:
    """Classifies each window as class (first value mod 3); waits for `gate` before each batch."""

    def __init__(self, version: str = "s1", fail: bool = False) -> None:
        self.manifest = SimpleNamespace(name="shadow", version=version, labels=LABELS)
        self.gate = threading.Event()
        self.gate.set()
        self.fail = fail
        self.closed = False

    def predict_batch(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        assert self.gate.wait(10)
        if self.fail:
            raise RuntimeError("shadow refuses\nsecond line")
        classes = x[:, 0, 0].astype(np.int64) % 3
        return np.eye(3, dtype=np.float32)[classes]

    def close(self) -> None:
        self.closed = True


def collect_all(runner: ShadowRunner, batches: int) -> tuple[list[ShadowBatch], int]:
    done: list[ShadowBatch] = []
    failed = 0
    deadline = time.monotonic() + 10
    while len(done) < batches and time.monotonic() < deadline:
        got, lost = runner.collect()
        done += got
        failed += lost
        if failed:
            break
        time.sleep(0.005)
    return done, failed


def test_a_shadow_that_falls_behind_skips_batches_instead_of_waiting() -> None:
    model = GatedModel()
    model.gate.clear()  # the shadow is stuck on its first batch
    runner = ShadowRunner(model, max_queued_batches=2)
    labels = np.array(["a", "b"], dtype=object)
    started = time.monotonic()
    skipped = [runner.offer(make_rows(2), labels) for _ in range(6)]
    assert time.monotonic() - started < 0.5  # never waited for the shadow
    assert sum(skipped) >= 6  # 2 queued + 1 taken at most; every other batch skipped
    assert runner.skipped == sum(skipped)
    model.gate.set()
    queued = 6 - sum(skipped) // 2
    done, failed = collect_all(runner, queued)
    assert len(done) == queued and failed == 0
    runner.close()
    assert model.closed


def test_a_failing_shadow_batch_is_skipped_and_the_runner_goes_on() -> None:
    model = GatedModel(fail=True)
    runner = ShadowRunner(model, max_queued_batches=4)
    runner.offer(make_rows(3), np.array(["a"] * 3, dtype=object))
    done, failed = collect_all(runner, 1)
    assert done == [] and failed == 3 and runner.skipped == 3
    model.fail = False
    runner.offer(make_rows(2), np.array(["a"] * 2, dtype=object))
    done, _ = collect_all(runner, 1)
    assert len(done) == 1
    runner.close()


def test_shadow_events_say_shadow_and_agreement_is_counted_by_label_pair() -> None:
    config = Config(kafka=KafkaConfig(output_topic="events"))
    offsets = OffsetTracker()
    offsets.assign(TopicPartition("samples", 0), None)
    metrics = WorkerMetrics(CollectorRegistry())
    board = StatusBoard(["x"])
    out = EventOutput(config, _primary_manifest(), offsets, metrics, WorkerStats(), board, {})
    rows = make_rows(4)
    rows.data[:, 0, 0] = [0, 1, 2, 0]  # the shadow says a, b, c, a
    probabilities = GatedModel().predict_batch(rows.data)
    primary = np.array(["a", "b", "b", "c"], dtype=object)
    producer = RecordingProducer()
    out.produce_shadow(ShadowBatch(rows, primary, probabilities, GatedModel()), producer)

    events = [orjson.loads(v) for v in producer.sent["events.shadow"]]
    assert [e["label"] for e in events] == ["a", "b", "c", "a"]
    assert all(e["shadow"] is True and e["model"]["version"] == "s1" for e in events)
    agreement = _samples(metrics, "sensorstream_shadow_agreement_total", "agree")
    assert agreement == {"true": 2.0, "false": 2.0}
    pairs = {
        (s.labels["primary"], s.labels["shadow"]): s.value
        for family in metrics.shadow_pairs.collect()
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert pairs == {("a", "a"): 1.0, ("b", "b"): 1.0, ("b", "c"): 1.0, ("c", "a"): 1.0}
    assert board.shadow_status() == {
        "version": "s1",
        "windows": 4,
        "agreed": 2,
        "agreement_rate": 0.5,
    }


class RecordingProducer:
    max_request_bytes = 1_048_576

    def __init__(self) -> None:
        self.sent: dict[str, list[bytes]] = {}

    def send(self, topic: str, value: bytes, key: bytes | None = None, headers=None) -> None:
        self.sent.setdefault(topic, []).append(value)


def _primary_manifest() -> SimpleNamespace:
    return SimpleNamespace(name="primary", version="p1", labels=("a", "b", "c"))


def _samples(metrics: WorkerMetrics, name: str, label: str) -> dict[str, float]:
    return {
        s.labels[label]: s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == name
    }
