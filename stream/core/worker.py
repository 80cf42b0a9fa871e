"""The worker: Kafka in, per-device windows, batched predictions, events out.

One `step()` is the whole data path, top to bottom:

    poll -> decode and validate -> append to the device buffers -> ready windows
    -> dynamic batch -> predict (on the predictor thread) -> produce events -> commit

Bad records become dead letters; producer, commit and predictor failures stop
the worker without committing past them (at-least-once: a restart replays from
the last commit and loses nothing). An unreachable broker is waited out instead,
up to `[delivery] broker_outage_s` (stream/core/broker_outage.py).
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from stream.config.schema import Config
from stream.core.allocator import tune_allocator
from stream.core.backpressure import Backpressure
from stream.core.broker_outage import BrokerOutage, OutageRecovery
from stream.core.checkpoint import Checkpoint, GroupCheckpoint
from stream.core.columns import WindowRows
from stream.core.drift import drift_monitor
from stream.core.event_output import EventOutput
from stream.core.housekeeping import Housekeeping
from stream.core.inference import Classified, InferenceThread
from stream.core.intake import Intake
from stream.core.metrics import WorkerMetrics
from stream.core.model_reload import ModelReloader
from stream.core.offsets import OffsetTracker
from stream.core.recovery import latest_anchor_per_device
from stream.core.served_model import ServedModel, export_model_info, swap_primary
from stream.core.shadow import ShadowRunner, swap_shadow
from stream.core.side_requests import SideQueue
from stream.core.stats import WorkerStats
from stream.core.status_board import StatusBoard
from stream.kafka.client_errors import is_outage
from stream.kafka.clients import LatchingProducer, ProducerFailed, transactional_producer
from timesnet.batch_predictor import BatchPredictor
from timesnet.manifest import ModelManifest

log = logging.getLogger(__name__)

COLLECT_WAIT_SATURATED_S = 0.05


class Worker:
    """One consumer, one predictor thread, one producer; a checkpoint says where progress goes."""

    def __init__(
        self,
        config: Config,
        predictor: BatchPredictor,
        registry: CollectorRegistry | None = None,
        event_extras: dict[str, object] | None = None,
        checkpoint: Checkpoint | None = None,
        owns_predictor: bool = False,
    ) -> None:
        tune_allocator()  # process-wide; see stream/core/allocator.py
        self.config = config
        # the served model, swapped by a reload (stream/core/model_reload.py) between batches
        self.models = ServedModel(predictor, owned=owns_predictor)
        self.reloader: ModelReloader | None = None  # set by service.attach_model_reload
        self.shadow: ShadowRunner | None = None  # set by service.attach_shadow
        self.shadow_reloader: ModelReloader | None = None
        # a group member unless told otherwise (a replay passes its RangeCheckpoint)
        self.checkpoint: Checkpoint = checkpoint or GroupCheckpoint(config)
        self.metrics = WorkerMetrics(registry or CollectorRegistry())
        self.stats = WorkerStats()
        # what the status page at / shows; class_id -1 (abstained) reads the abstain label
        self.board = StatusBoard([*self.manifest.labels, config.model.abstain_label])
        self.offsets = OffsetTracker()
        self.intake = Intake(config, self.manifest.channels, self.offsets, self.metrics, self.stats)
        # what a change of ownership and a replay work on (stream/core/partitions.py)
        self.store, self.resume = self.intake.store, self.intake.resume
        self.batcher = self.intake.batcher
        self.output = EventOutput(
            config,
            self.manifest,
            self.offsets,
            self.metrics,
            self.stats,
            self.board,
            event_extras or {},
        )
        self.side_requests = SideQueue()  # HTTP classification riding in the stream's batches
        self.backpressure = Backpressure(config.batching.max_pending_windows, self.metrics)
        self.housekeeping = Housekeeping(
            self.store,
            self.offsets,
            self.checkpoint,
            self.metrics,
            self.stats,
            config.kafka.stall_timeout_s,
        )
        self.outage = BrokerOutage(config.delivery.broker_outage_s, self.metrics.broker_unreachable)
        self.drift = drift_monitor(config.drift, self.manifest, self.metrics)
        self.outage_recovery = OutageRecovery(self, self.outage)
        self._stop = threading.Event()
        self._produced: list[int] = []  # tokens of batches produced since the last commit
        self._last_commit_s = time.monotonic()
        self._last_poll_s = 0.0
        self.consumer: KafkaConsumer | None = None
        self.producer: LatchingProducer | None = None
        self._inference: InferenceThread | None = None

    @property
    def predictor(self) -> BatchPredictor:
        """The model new batches go to."""
        return self.models.current

    @property
    def manifest(self) -> ModelManifest:
        """The served model's manifest."""
        return self.models.current.manifest

    # -- lifecycle ------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop polling; `run` drains, flushes, commits and returns."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    def ready(self) -> tuple[bool, str]:
        """Model loaded, partitions assigned, and the poll loop alive."""
        if self.consumer is None:
            return False, "not started"
        if not self.offsets.assigned_sources:
            return False, "no partitions assigned"
        if time.monotonic() - self._last_poll_s > 30:
            return False, "poll loop stalled"
        if stalled := self.checkpoint.stalled():
            return False, f"consumer stalled: {stalled}"
        if self.outage.active:
            return False, f"broker unreachable for {self.outage.seconds():.0f} s"
        return True, f"model={self.manifest.name}:{self.manifest.version}"

    def open(self) -> None:
        """Connect the clients and subscribe or assign (see stream/core/checkpoint.py)."""
        self._export_model_info()
        self._inference = InferenceThread(on_stream_error=self.metrics.predictor_errors.inc)
        if self.exactly_once:
            self.producer = transactional_producer(self.config.kafka, self.config.delivery)
        else:
            self.producer = LatchingProducer(self.config.kafka)
        self.consumer = self.checkpoint.open(self)

    @property
    def inference(self) -> InferenceThread:
        """The predictor thread (started by `open`)."""
        if self._inference is None:
            raise RuntimeError("the worker is not open")
        return self._inference

    @property
    def exactly_once(self) -> bool:
        """Events, dead letters, anchors and offsets go in one transaction per commit."""
        return self.checkpoint.transactional

    @property
    def predictor_failed(self) -> bool:
        """A stream batch failed: nothing is committed from now on."""
        return self._inference is not None and self._inference.failed

    @property
    def broker_away(self) -> bool:
        """A broker outage is being waited out."""
        return self.outage.active

    def broker_went_away(self, exc: BaseException) -> None:
        """A flush, commit or transaction could not reach the broker: wait it out."""
        self.outage_recovery.began(exc)

    @property
    def finished(self) -> bool:
        """The run is done: a replay's range read and handed on (a group member never is)."""
        idle = not self.batcher.pending and not (self._inference and self._inference.in_flight)
        return self.checkpoint.finished(idle)

    def run(self) -> None:
        """Steps until a stop is requested (or a replay's range is done), then drains."""
        if self.consumer is None:
            self.open()
        try:
            while not self._stop.is_set() and not self.finished:
                self.step()
            self.drain(self.config.delivery.shutdown_deadline_s)
        finally:
            self.close()

    def close(self) -> None:
        """Release the clients (no commit: `drain` commits what is safe)."""
        self.side_requests.fail_all(TimeoutError("the worker is stopping"))
        if self._inference is not None:
            self._inference.close()
        if self.consumer is not None:
            self.consumer.close(autocommit=False)  # revokes: the drain-and-commit hook runs
            self.checkpoint.close()
        if self.producer is not None:
            if self.exactly_once:
                # whatever `drain` could not commit is not half-visible
                self.producer.abort(self.config.delivery.producer_flush_timeout_s)
            self.producer.close()
        for reloader in (self.reloader, self.shadow_reloader):
            if reloader is not None:
                reloader.close()
        if self.shadow is not None:
            self.shadow.close()
        self.models.close()

    # -- the served model -------------------------------------------------------
    def _maybe_swap_model(self) -> None:
        """Between two batches: serve what the reloaders loaded, if anything is waiting."""
        if self.shadow is not None and self.shadow_reloader is not None:
            swap_shadow(self.shadow, self.shadow_reloader, self.metrics)
        if self.reloader is not None and swap_primary(self.models, self.reloader, self.metrics):
            self._export_model_info()
            self.board.model_changed(self.manifest.version)
            self.drift = drift_monitor(self.config.drift, self.manifest, self.metrics)

    def _export_model_info(self) -> None:
        """sensorstream_model_info shows the served model only."""
        export_model_info(self.metrics, self.manifest, self.config.model.device)

    # -- the data path ----------------------------------------------------------
    def step(self) -> None:
        """One pass of the loop."""
        if self.outage.active:
            # an outage is not a stall: the watchdog's clock starts when the broker is back
            self.checkpoint.excuse_stall(time.monotonic())
            self.outage_recovery.ride_out()
            return
        self._maybe_swap_model()
        waiting = bool(len(self.side_requests))
        timeout_ms = self.intake.poll_timeout_ms(waiting, bool(self.inference.in_flight))
        records, index = self.intake.poll(self._consumer, self.checkpoint, timeout_ms)
        self.note_poll()
        samples, dead_letters = self.intake.decoder.decode(records)
        self.output.dead_letters(dead_letters, self._producer)
        if len(samples):
            self.drift.observe_samples(samples.values)
        late = self.intake.append(samples, records, index, now_ms=_now_ms())
        self.output.dead_letters(late, self._producer)
        self.intake.queue_ready_windows(index)
        self._submit_batches()
        self._produce_events(self.inference.collect(timeout_s=self._collect_wait_s()))
        self._produce_shadow()
        self._maybe_commit()
        if self.outage.active:
            return  # the commit found the broker gone: its positions can't be asked for
        self.backpressure.apply(self._consumer, self._pending_windows())
        self.housekeeping.maybe_run(self._consumer, _now_ms())
        self.drift.maybe_update()

    def note_poll(self) -> None:
        """The poll loop is alive (what /readyz checks)."""
        self._last_poll_s = time.monotonic()

    @property
    def _consumer(self) -> KafkaConsumer:
        if self.consumer is None:
            raise RuntimeError("the worker is not open")
        return self.consumer

    @property
    def _producer(self) -> LatchingProducer:
        if self.producer is None:
            raise RuntimeError("the worker has no producer (not open, or between producers)")
        return self.producer

    def _submit_batches(self, force: bool = False) -> None:
        while self.inference.can_submit():
            # waiting HTTP requests make the stream's partial batch due at once
            side = self.side_requests.take(self.config.batching.max_batch)
            batch = self.batcher.next_batch(time.monotonic(), force=force or bool(side))
            if batch is None and not side:
                return
            if batch is None:
                batch = WindowRows.empty(self.manifest.window_length, self.manifest.channels)
            predictor = self.models.current
            self.inference.submit(predictor, batch, self.offsets.hold(batch), side)
            self.models.submitted(predictor)

    def _produce_events(self, classified: list[Classified]) -> None:
        for done in classified:
            if len(done.rows):  # else HTTP requests only: answered by the predictor thread
                labels = self.output.produce(done, self._producer)
                if self.shadow is not None:
                    self.metrics.shadow_skipped.inc(self.shadow.offer(done.rows, labels))
                self.drift.observe_classes(done.probabilities.argmax(axis=1))
                self.checkpoint.keep_anchors(latest_anchor_per_device(done.rows))
            self._produced.append(done.token)
            self.models.returned(done.predictor)

    def _produce_shadow(self) -> None:
        if self.shadow is None:
            return
        batches, failed = self.shadow.collect()
        self.metrics.shadow_skipped.inc(failed)
        for batch in batches:
            self.output.produce_shadow(batch, self._producer)

    def _maybe_commit(self, force: bool = False) -> None:
        interval_s = self.config.delivery.commit_interval_ms / 1000.0
        if not force and time.monotonic() - self._last_commit_s < interval_s:
            return
        self.commit()

    def commit(self) -> None:
        """Flush and commit; an unreachable broker starts an outage instead of stopping."""
        if self.outage.active:
            return  # nothing is committed until a retry reaches the broker
        try:
            self.commit_now()
        except (KafkaError, ProducerFailed) as exc:
            if not self.checkpoint.rides_out_outages or not is_outage(exc):
                raise
            self.outage_recovery.began(exc)

    def commit_now(self) -> None:
        """The commit's steps, in order: stream/core/checkpoint.py's module docstring."""
        if self.predictor_failed:
            return  # 6. never commit after a predictor failure (the revoke at close lands here)
        producer = self._producer
        flush_timeout_s = self.config.delivery.producer_flush_timeout_s
        producer.flush(flush_timeout_s)  # 1.
        if self.checkpoint.write_anchors(producer):  # 2.
            producer.flush(flush_timeout_s)
        for token in self._produced:  # 3.
            self.offsets.release(token)
        self._produced.clear()
        positions = self.offsets.positions(self.store.low_watermarks(), self.batcher.waiting())
        if self.checkpoint.commit(positions, producer):  # 4. and 5.
            self.offsets.committed(positions)
            self.metrics.commits.inc()
            log.debug(
                "committed %s",
                {f"{tp.topic}[{tp.partition}]": m.offset for tp, m in positions.items()},
            )
        self._last_commit_s = time.monotonic()

    # -- flow control -----------------------------------------------------------
    def _pending_windows(self) -> int:
        return self.batcher.pending + self.inference.in_flight * self.config.batching.max_batch

    def _collect_wait_s(self) -> float:
        # Block for results only when the predictor is the bottleneck. With the next
        # batch already full as well, a poll can bring nothing that goes anywhere before
        # a batch returns: wait for that (collect returns on its arrival) instead of
        # turning the loop beside the runtime's math threads (ONNX Runtime releases the
        # GIL, so a spinning loop takes its share of the cores from the predictor).
        if self.inference.can_submit():
            return 0.0
        if self.batcher.pending >= self.config.batching.max_batch:
            return COLLECT_WAIT_SATURATED_S
        return 0.005

    # -- giving work back -------------------------------------------------------
    def forget_uncommitted(self, partitions: list[TopicPartition]) -> None:
        """Drop everything since the last commit; `partitions` (all owned) are re-read later.

        In-flight batches and the produced-but-uncommitted list mix partitions, so this
        is only safe over every owned partition: their offsets are forgotten with them.
        """
        while self.inference.in_flight:  # their events are not to be produced now
            for done in self.inference.collect(timeout_s=0.05):
                self.offsets.release(done.token)
                self.models.returned(done.predictor)
        self.batcher.drain()
        for token in self._produced:
            self.offsets.release(token)
        self._produced.clear()
        self.checkpoint.forget_anchors()
        sources = [self.offsets.revoke(tp) for tp in partitions]
        self.store.drop_sources(sources)
        self.resume.drop_sources(sources)

    def rewind(self, partitions: list[TopicPartition]) -> None:
        """Seek `partitions` to their last commit and restore their devices' anchors."""
        self.checkpoint.rewind(partitions)

    def restart_transaction(self) -> None:
        """exactly-once: abort the open transaction by fencing it with a fresh producer."""
        if self.producer is not None:
            self.producer.close(timeout_s=0)
            self.producer = None
        self.producer = transactional_producer(self.config.kafka, self.config.delivery)

    # -- draining ---------------------------------------------------------------
    def flush_all(self, deadline_s: float) -> bool:
        """Push every waiting window through the predictor and producer; True if all made it."""
        if self.inference.failed:
            return False
        if self.outage.active:
            return False  # nothing is produced or committed until the broker answers
        end = time.monotonic() + deadline_s
        while (self.batcher.pending or self.inference.in_flight) and time.monotonic() < end:
            self._submit_batches(force=True)
            self._produce_events(self.inference.collect(timeout_s=0.05))
        return not (self.batcher.pending or self.inference.in_flight)

    def finish_in_flight(self, deadline_s: float) -> bool:
        """Produce the batches already at the predictor (none new); True if all came back."""
        end = time.monotonic() + deadline_s
        while self.inference.in_flight and time.monotonic() < end:
            self._produce_events(self.inference.collect(timeout_s=0.05))
        return not self.inference.in_flight

    def drain(self, deadline_s: float) -> None:
        """Shutdown: finish in-flight work, flush, commit."""
        complete = self.flush_all(deadline_s)
        if self.shadow is not None and not self.outage.active:
            self.shadow.wait_idle(deadline_s)
            self._produce_shadow()
        self.commit()
        log.info("drained complete=%s windows=%d", complete, self.stats.windows)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
