"""Reading stops while too many windows wait for the predictor, and resumes at half.

The bound is `[batching] max_pending_windows`: windows waiting for a batch plus the
batches at the predictor. Pausing the consumer (not blocking the loop) keeps the
group session, the producer and the commits going while the predictor catches up.
"""

from __future__ import annotations

import logging

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from stream.core.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class Backpressure:
    """Pauses every unpaused partition above the bound; resumes them at half of it."""

    def __init__(self, bound: int, metrics: WorkerMetrics) -> None:
        self.bound = bound
        self.metrics = metrics
        self._paused: list[TopicPartition] = []  # paused here (not by an outage or a replay)

    def apply(self, consumer: KafkaConsumer, pending: int) -> None:
        """Pause or resume for `pending` windows, and export both gauges."""
        if not self._paused and pending > self.bound:
            self._paused = [tp for tp in consumer.assignment() if tp not in consumer.paused()]
            consumer.pause(*self._paused)
            log.info("backpressure pause pending=%d bound=%d", pending, self.bound)
        elif self._paused and pending <= self.bound // 2:
            assigned = consumer.assignment()
            consumer.resume(*[tp for tp in self._paused if tp in assigned])
            self._paused = []
            log.info("backpressure resume pending=%d", pending)
        self.metrics.paused_partitions.set(len(self._paused))
        self.metrics.pending_windows.set(pending)
