"""What the worker sends: one event per window, the alerts they fire, the dead letters.

Everything a produced batch teaches the rest of the worker is done here in one
place: the events and alerts sent, the metrics and run stats, and the status board.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from kafka.structs import TopicPartition

from stream.config.schema import Config, shadow_topic
from stream.core.abstain import decide
from stream.core.alerts import AlertEvaluator
from stream.core.columns import WindowRows
from stream.core.events import (
    EventSource,
    ModelRef,
    encode_dead_letter,
    encode_events,
    event_id,
)
from stream.core.inference import Classified
from stream.core.metrics import WorkerMetrics
from stream.core.offsets import OffsetTracker
from stream.core.shadow import ShadowBatch
from stream.core.stats import WorkerStats
from stream.core.status_board import StatusBoard
from stream.decode.types import DeadLetter
from stream.kafka.clients import LatchingProducer
from timesnet.manifest import ModelManifest


class EventOutput:
    """Sends a batch's events and alerts, and tells the metrics, stats and status board."""

    def __init__(
        self,
        config: Config,
        manifest: ModelManifest,
        offsets: OffsetTracker,
        metrics: WorkerMetrics,
        stats: WorkerStats,
        board: StatusBoard,
        event_extras: dict[str, object],
    ) -> None:
        self.config = config
        self.offsets = offsets
        self.metrics = metrics
        self.stats = stats
        self.board = board
        self.event_extras = event_extras
        self.label_names = list(manifest.labels)
        # class_id -1 (abstained, stream/core/abstain.py) picks the last: the abstain label
        self.labels = np.array([*manifest.labels, config.model.abstain_label], dtype=object)
        self._model_refs: dict[str, ModelRef] = {}
        self.shadow_topic = shadow_topic(config)
        self.alerts = AlertEvaluator(config.alerts) if config.alerts else None
        for rule in config.alerts:
            metrics.alerts.labels(rule.name)  # the series exists at 0 before the first alert

    def produce(self, done: Classified, producer: LatchingProducer) -> npt.NDArray[np.object_]:
        """One event per window of a classified batch, keyed by device; returns their labels.

        The event's model is the one that classified the batch: during a reload,
        batches in flight still carry the old model's version.
        """
        rows, probabilities = done.rows, done.probabilities  # probabilities [W, K]
        model = self._model_ref(done.predictor.manifest)
        self._send_events(
            rows,
            probabilities,
            self.label_names,
            model,
            {},
            self.config.kafka.output_topic,
            producer,
        )
        class_ids = decide(probabilities, self.config.model.min_score).class_ids  # -1: abstained
        if self.alerts is not None:
            self._produce_alerts(rows, probabilities, class_ids, model.version, producer)
        latencies_s = (_now_ms() - rows.ready_record_ts_ms) / 1000.0
        self._observe(len(rows), done.inference_s, class_ids, latencies_s)
        self.board.add_batch(rows, probabilities, class_ids)
        return self.labels[class_ids]  # [W]

    def produce_shadow(self, batch: ShadowBatch, producer: LatchingProducer) -> None:
        """The shadow's events (with "shadow": true) and its agreement with the primary."""
        manifest = batch.predictor.manifest
        model = self._model_ref(manifest)
        extra = {"shadow": True}
        self._send_events(
            batch.rows,
            batch.probabilities,
            manifest.labels,
            model,
            extra,
            self.shadow_topic,
            producer,
        )
        shadow_labels = np.array([*manifest.labels, self.config.model.abstain_label], dtype=object)
        class_ids = decide(batch.probabilities, self.config.model.min_score).class_ids
        labels = shadow_labels[class_ids]  # [W]
        agree = labels == batch.primary_labels  # [W]
        agreed = int(agree.sum())
        self.metrics.shadow_windows.inc(len(labels))
        self.metrics.shadow_agreement.labels("true").inc(agreed)
        self.metrics.shadow_agreement.labels("false").inc(len(labels) - agreed)
        pairs, counts = np.unique(
            np.stack([batch.primary_labels.astype(str), labels.astype(str)], axis=1),
            axis=0,
            return_counts=True,
        )
        for (primary, shadow), n in zip(pairs.tolist(), counts.tolist(), strict=True):
            self.metrics.shadow_pairs.labels(primary, shadow).inc(n)
        self.board.shadow_batch(manifest.version, len(labels), agreed)

    def _send_events(
        self,
        rows: WindowRows,
        probabilities: npt.NDArray[np.float32],
        labels: Sequence[str],
        model: ModelRef,
        extra: Mapping[str, object],
        topic: str,
        producer: LatchingProducer,
    ) -> None:
        sources = [
            EventSource(
                topic=tp.topic, partition=tp.partition, first_offset=first, last_offset=last
            )
            for tp, first, last in zip(
                map(self.offsets.partition, rows.sources.tolist()),
                rows.first_offsets.tolist(),
                rows.last_offsets.tolist(),
                strict=True,
            )
        ]
        encoded = encode_events(
            rows.device_ids,
            rows.start_ts_ms,
            rows.end_ts_ms,
            probabilities,
            labels,
            model,
            sources,
            _now_ms(),
            {**self.event_extras, **extra},
            self.config.model.min_score,
            self.config.model.abstain_label,
        )
        for device_id, value in zip(rows.device_ids, encoded, strict=True):
            producer.send(topic, value, device_id.encode())

    def _model_ref(self, manifest: ModelManifest) -> ModelRef:
        ref = self._model_refs.get(manifest.version)
        if ref is None:
            ref = self._model_refs[manifest.version] = ModelRef(
                name=manifest.name, version=manifest.version
            )
        return ref

    def dead_letters(self, dead_letters: list[DeadLetter], producer: LatchingProducer) -> None:
        """Original bytes and the reason, to the dead-letter topic (once across restarts)."""
        topic = self.config.kafka.dead_letter_topic
        for dl in dead_letters:
            record = dl.record
            source = self.offsets.source_id(TopicPartition(record.topic, record.partition))
            if record.offset <= self.offsets.skip_through(source):
                continue  # sent before a restart; replaying it must not send it twice
            key, value, headers = encode_dead_letter(dl, producer.max_request_bytes)
            producer.send(topic, value, key, headers)
            self.metrics.dead_letters.labels(dl.reason).inc()
            self.stats.count_dead_letter(dl.reason)

    def _produce_alerts(
        self,
        rows: WindowRows,
        probabilities: npt.NDArray[np.float32],
        class_ids: npt.NDArray[np.int64],
        version: str,
        producer: LatchingProducer,
    ) -> None:
        assert self.alerts is not None
        ends = rows.end_ts_ms.tolist()
        fired = self.alerts.evaluate(
            rows.device_ids,
            self.labels[class_ids].tolist(),
            probabilities.max(axis=1),
            rows.start_ts_ms,
            rows.end_ts_ms,
            [event_id(d, end, version) for d, end in zip(rows.device_ids, ends, strict=True)],
            time.time(),
        )
        for alert in fired:
            producer.send(self.config.kafka.alerts_topic, alert.to_json(), alert.device_id.encode())
            self.metrics.alerts.labels(alert.rule).inc()
        self.board.add_alerts(fired)

    def _observe(
        self,
        count: int,
        inference_s: float,
        class_ids: npt.NDArray[np.int64],
        latencies_s: npt.NDArray[np.float64],
    ) -> None:
        self.metrics.batch_size.observe(count)
        self.metrics.inference_seconds.observe(inference_s)
        self.metrics.windows_emitted.inc(count)
        labels, counts = np.unique(class_ids, return_counts=True)
        for class_id, n in zip(labels.tolist(), counts.tolist(), strict=True):
            self.metrics.events.labels(self.labels[class_id]).inc(n)
            self.stats.count_event(self.labels[class_id], n)
        for latency in latencies_s.tolist():
            self.metrics.end_to_end_seconds.observe(latency)
        self.stats.record_batch(count, inference_s, latencies_s)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
