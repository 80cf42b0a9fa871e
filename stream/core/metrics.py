"""The worker's Prometheus metrics, all on one injected registry.

Names are a public contract: the Grafana dashboard and the alert rules in
deploy/ query them, and a test checks that every name they use exists.
"""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
INFERENCE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
M = TypeVar("M", bound=MetricWrapperBase)


class WorkerMetrics:
    """Every series the worker exports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.records_consumed = Counter(
            "sensorstream_records_consumed", "Kafka records read", ["topic"], registry=r
        )
        self.samples_consumed = Counter(
            "sensorstream_samples_consumed", "Valid samples decoded from records", registry=r
        )
        self.dead_letters = Counter(
            "sensorstream_dead_letters",
            "Records sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.window_samples = Counter(
            "sensorstream_window_samples",
            "Samples dropped, filled or reordered by the window policies",
            ["outcome"],
            registry=r,
        )
        self.devices_evicted = Counter(
            "sensorstream_devices_evicted", "Device states dropped", ["reason"], registry=r
        )
        self.windows_emitted = Counter(
            "sensorstream_windows_emitted", "Windows classified and produced as events", registry=r
        )
        self.windows_skipped = Counter(
            "sensorstream_windows_skipped_replay",
            "Windows rebuilt after a restart but already emitted before it",
            registry=r,
        )
        self.events = Counter(
            "sensorstream_events", "Events produced, by label", ["label"], registry=r
        )
        self.batch_size = Histogram(
            "sensorstream_batch_size",
            "Windows per predictor call",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "sensorstream_inference_seconds",
            "Predictor time per batch",
            buckets=INFERENCE_BUCKETS_S,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "sensorstream_end_to_end_latency_seconds",
            "Event produced minus the Kafka timestamp of the record that completed the window",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.predictor_errors = Counter(
            "sensorstream_predictor_errors",
            "Predictor calls on stream windows that raised (the worker then stops)",
            registry=r,
        )
        self.commits = Counter("sensorstream_commits", "Offset commits", registry=r)
        self.consumer_stalls = Counter(
            "sensorstream_consumer_stalls",
            "Times the consumer read nothing it should have for kafka.stall_timeout_s (it rejoins)",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "sensorstream_consumer_lag",
            "High watermark minus position",
            ["topic", "partition"],
            registry=r,
        )
        self.active_devices = Gauge(
            "sensorstream_active_devices", "Devices with window state", registry=r
        )
        self.window_state_bytes = Gauge(
            "sensorstream_window_state_bytes", "Memory held by device ring buffers", registry=r
        )
        self.pending_windows = Gauge(
            "sensorstream_pending_windows",
            "Windows waiting for or inside the predictor",
            registry=r,
        )
        self.paused_partitions = Gauge(
            "sensorstream_paused_partitions", "Partitions paused by backpressure", registry=r
        )
        self.assigned_partitions = Gauge(
            "sensorstream_assigned_partitions", "Partitions owned by this worker", registry=r
        )
        self.model_info = Gauge(
            "sensorstream_model_info",
            "The served model (value 1)",
            ["name", "version", "architecture", "device"],
            registry=r,
        )
        self.model_reloads = Counter(
            "sensorstream_model_reloads",
            "Model reloads by result: ok (swapped in) or refused (the old model kept serving)",
            ["result"],
            registry=r,
        )
        for result in ("ok", "refused"):
            self.model_reloads.labels(result)  # both series exist at 0 before the first reload
        self.shadow_windows = Counter(
            "sensorstream_shadow_windows",
            "Windows the shadow model classified and published",
            registry=r,
        )
        self.shadow_skipped = Counter(
            "sensorstream_shadow_skipped",
            "Windows the shadow model skipped: it was behind the primary, or failed on them",
            registry=r,
        )
        self.shadow_agreement = Counter(
            "sensorstream_shadow_agreement",
            "Shadow windows by whether their label equals the primary's",
            ["agree"],
            registry=r,
        )
        self.shadow_pairs = Counter(
            "sensorstream_shadow_pairs",
            "Shadow windows by the primary's label and the shadow's label",
            ["primary", "shadow"],
            registry=r,
        )
        self.broker_unreachable = Gauge(
            "sensorstream_broker_unreachable_seconds",
            "Seconds since the broker became unreachable (0 when reachable)",
            registry=r,
        )
        self.alerts = Counter("sensorstream_alerts", "Label alerts fired", ["rule"], registry=r)
        # Registered by `show` once there is a value (stream/core/drift.py): absent for a
        # model without training statistics, and before there is anything to compare.
        self.input_drift_psi = Gauge(
            "sensorstream_input_drift_psi",
            "Population stability index of recent samples against training, per channel",
            ["channel"],
            registry=None,
        )
        self.label_drift_psi = Gauge(
            "sensorstream_label_drift_psi",
            "Population stability index of recent top classes against the training labels",
            registry=None,
        )
        self.optional: tuple[MetricWrapperBase, ...] = (self.input_drift_psi, self.label_drift_psi)
        self._shown: set[int] = set()

    def show(self, metric: M) -> M:
        """Register one of the `optional` metrics on the registry (once); returns it."""
        if id(metric) not in self._shown:
            self._shown.add(id(metric))
            self.registry.register(metric)
        return metric

    def hide(self, metric: MetricWrapperBase) -> None:
        """Take one of the `optional` metrics off the registry again, with its values."""
        if id(metric) in self._shown:
            self._shown.discard(id(metric))
            self.registry.unregister(metric)
        if metric._labelnames:
            metric.clear()
