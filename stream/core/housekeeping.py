"""The worker's once-a-second chores: idle devices, gauges, consumer lag and the stall watch."""

from __future__ import annotations

import logging
import time

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from stream.core.checkpoint import Checkpoint
from stream.core.metrics import WorkerMetrics
from stream.core.offsets import OffsetTracker
from stream.core.stats import WorkerStats
from stream.kafka.consumer_watchdog import ConsumerView, is_stable_member, request_rejoin
from windows import WindowStore

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 1.0
POSITION_TIMEOUT_MS = 500  # lag is a gauge: not worth blocking the loop longer


class Housekeeping:
    """Evicts idle devices, exports the store's counters and the lag, watches for stalls."""

    def __init__(
        self,
        store: WindowStore,
        offsets: OffsetTracker,
        checkpoint: Checkpoint,
        metrics: WorkerMetrics,
        stats: WorkerStats,
        stall_timeout_s: float,
    ) -> None:
        self.store = store
        self.offsets = offsets
        self.checkpoint = checkpoint
        self.metrics = metrics
        self.stats = stats
        self.stall_timeout_s = stall_timeout_s
        self._last_run_s = 0.0
        self._counters_seen: dict[str, int] = {}

    def maybe_run(self, consumer: KafkaConsumer, now_ms: int) -> None:
        """At most once per HOUSEKEEPING_INTERVAL_S."""
        now = time.monotonic()
        if now - self._last_run_s < HOUSEKEEPING_INTERVAL_S:
            return
        self._last_run_s = now
        self.store.evict_idle(now_ms)
        self._export_store_counters()
        self.metrics.active_devices.set(self.store.active_devices)
        self.metrics.window_state_bytes.set(self.store.memory_bytes())
        owned_lag = self._export_lag(consumer)
        if owned_lag is not None:
            self._watch(consumer, now, owned_lag)

    def _export_lag(self, consumer: KafkaConsumer) -> int | None:
        """Lag per partition; the summed lag of owned, unpaused ones (None if unknown)."""
        assignment = consumer.assignment()
        self.metrics.assigned_partitions.set(len(assignment))
        owned_lag = 0
        lag_known = True
        paused = consumer.paused()
        for tp in assignment:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = _position_or_none(consumer, tp)
            if position is None:
                lag_known = False
                continue
            lag = max(highwater - position, 0)
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
            if tp not in paused and self.offsets.source_id(tp) in self.offsets.assigned_sources:
                owned_lag += lag
        return owned_lag if lag_known else None

    def _watch(self, consumer: KafkaConsumer, now_s: float, owned_lag: int) -> None:
        view = ConsumerView(
            now_s=now_s,
            owned_partitions=len(self.offsets.assigned_sources),
            stable_member=is_stable_member(consumer),
            lag=owned_lag,
            records_total=self.stats.records,
        )
        reason = self.checkpoint.watch(view)
        if reason:
            self.metrics.consumer_stalls.inc()
            log.warning(
                "consumer stalled for %.0f s (%s): rejoining the group",
                self.stall_timeout_s,
                reason,
            )
            request_rejoin(consumer)

    def _export_store_counters(self) -> None:
        for name, value in self.store.counters.items():
            delta = value - self._counters_seen.get(name, 0)
            self._counters_seen[name] = value
            if delta <= 0:
                continue
            if name.startswith("evicted_") or name == "dropped_rebalance":
                self.metrics.devices_evicted.labels(name.removeprefix("evicted_")).inc(delta)
            elif name != "windows":
                self.metrics.window_samples.labels(name).inc(delta)


def _position_or_none(consumer: KafkaConsumer, tp: TopicPartition) -> int | None:
    # position() may validate offsets over the network (KIP-320) right after the
    # broker came back; a broker that is gone again must not stop the worker here:
    # the next poll or commit finds the outage, and the lag is asked again later.
    try:
        return consumer.position(tp, timeout_ms=POSITION_TIMEOUT_MS)
    except KafkaError as exc:
        log.debug("position of %s[%d] unknown: %s", tp.topic, tp.partition, exc)
        return None
