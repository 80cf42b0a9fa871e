"""The two ceilings the pipeline is judged against: kafka-python alone, the predictor alone."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from kafka.structs import TopicPartition

from stream.config.schema import KafkaConfig
from stream.kafka.clients import make_consumer
from stream.kafka.columnar_fetch import use_columnar_fetch
from timesnet.batch_predictor import BatchPredictor


@dataclass(frozen=True)
class ConsumerCeiling:
    """kafka-python polling a pre-filled topic, nothing done with the records."""

    records: int
    value_bytes: int
    seconds: float

    @property
    def records_per_s(self) -> float:
        """Records per second, first poll with records to the last one."""
        return self.records / self.seconds

    @property
    def mb_per_s(self) -> float:
        """Record value megabytes (10**6) per second."""
        return self.value_bytes / self.seconds / 1e6


def consumer_ceiling(
    kafka: KafkaConfig, topic: str, expected: int, columnar: bool = False, timeout_s: float = 120.0
) -> ConsumerCeiling:
    """Poll `topic` from its start with the worker's consumer settings until `expected` records.

    kafka-python as it comes (one record object per record), or, with `columnar`, with
    the worker's columnar fetch (stream/kafka/columnar_fetch.py): what the worker's own
    reading costs before it decodes anything.
    """
    consumer = make_consumer(kafka, None)
    if columnar:
        use_columnar_fetch(consumer)
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        count = size = 0
        first_s = None
        deadline = time.monotonic() + timeout_s
        while count < expected and time.monotonic() < deadline:
            # timed from the start of the poll that returns the first records, as the worker is
            started = time.perf_counter()
            for batch in consumer.poll(timeout_ms=200, max_records=kafka.max_poll_records).values():
                if first_s is None:
                    first_s = started
                if columnar:
                    count += sum(map(len, batch))
                    size += sum(int(c.value_lengths.clip(0).sum()) for c in batch)
                else:
                    count += len(batch)
                    size += sum(len(r.value) for r in batch)
        if count < expected:
            raise RuntimeError(f"consumer ceiling read {count} of {expected} records from {topic}")
        return ConsumerCeiling(count, size, time.perf_counter() - first_s)
    finally:
        consumer.close()


@dataclass(frozen=True)
class PredictorPoint:
    """The predictor alone at one batch size."""

    batch: int
    windows_per_s: float
    batch_s: float  # median seconds per call


def predictor_sweep(
    predictor: BatchPredictor,
    series: npt.NDArray[np.float32],
    batch_sizes: list[int],
    budget_s: float,
) -> list[PredictorPoint]:
    """windows/s of `predict_batch` at each batch size, about `budget_s` of calls each."""
    length = predictor.manifest.window_length
    windows = series[: len(series) // length * length].reshape(-1, length, series.shape[1])
    points: list[PredictorPoint] = []
    for batch in batch_sizes:
        x = np.ascontiguousarray(np.resize(windows, (batch, length, series.shape[1])))  # [B, L, C]
        predictor.predict_batch(x)  # oneDNN picks kernels per shape
        times: list[float] = []
        spent = 0.0
        while spent < budget_s or len(times) < 3:
            started = time.perf_counter()
            predictor.predict_batch(x)
            times.append(time.perf_counter() - started)
            spent += times[-1]
        median_s = float(np.median(times))
        points.append(PredictorPoint(batch, batch / median_s, median_s))
    return points


def best_point(points: list[PredictorPoint]) -> PredictorPoint:
    """The batch size with the highest throughput."""
    return max(points, key=lambda p: p.windows_per_s)
