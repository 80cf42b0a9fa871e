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
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from stream.config.schema import Config
from stream.core.alerts import AlertEvaluator
from stream.core.allocator import tune_allocator
from stream.core.batching import DynamicBatcher
from stream.core.broker_outage import GROUP_MOVED, BrokerOutage, OutageRecovery, is_outage
from stream.core.columns import WindowRows
from stream.core.events import EventSource, ModelRef, encode_dead_letter, encode_events, event_id
from stream.core.inference import Classified, InferenceThread
from stream.core.metrics import WorkerMetrics
from stream.core.offsets import OffsetTracker
from stream.core.recovery import ResumeFilter, anchor_record_key, latest_anchor_per_device
from stream.core.side_requests import SideQueue
from stream.core.stats import WorkerStats
from stream.core.window_bridge import make_window_store, policy_dead_letters, to_rows
from stream.decode.polled import PolledRecords, PollIndex
from stream.decode.router import RecordDecoder
from stream.decode.types import DeadLetter, SampleBatch
from stream.http.status_page import StatusBoard
from stream.kafka.clients import LatchingProducer, ProducerFailed, make_consumer
from stream.kafka.columnar_fetch import use_columnar_fetch
from stream.kafka.consumer_watchdog import (
    ConsumerView,
    ConsumerWatchdog,
    is_stable_member,
    request_rejoin,
)
from stream.kafka.rebalance import RebalanceHandler
from stream.kafka.record_columns import RecordColumns

log = logging.getLogger(__name__)

CATCH_UP_POLL_TIMEOUT_MS = 5
HOUSEKEEPING_INTERVAL_S = 1.0
POSITION_TIMEOUT_MS = 500  # lag is a gauge: not worth blocking the loop longer


@dataclass
class _Produced:
    """Batches produced since the last flush (their offsets stay held until it), and the
    anchors of their devices, written only once those events are acknowledged."""

    tokens: list[int] = field(default_factory=list)
    anchors: dict[tuple[int, str], int] = field(default_factory=dict)


class Worker:
    """One consumer in the group, one predictor thread, one producer."""

    def __init__(
        self,
        config: Config,
        predictor: object,
        registry: CollectorRegistry | None = None,
        event_extras: dict[str, object] | None = None,
        bounds: dict[TopicPartition, tuple[int, int]] | None = None,
    ) -> None:
        tune_allocator()  # process-wide; see stream/core/allocator.py
        self.config = config
        self.bounds = bounds  # replay: read [start, end) of these partitions, no group, no commits
        self.predictor = predictor
        self.manifest = predictor.manifest  # type: ignore[attr-defined]
        self.event_extras = event_extras or {}
        self.metrics = WorkerMetrics(registry or CollectorRegistry())
        self.stats = WorkerStats()
        self.board = StatusBoard(self.manifest.labels)  # what the status page at / shows
        self.decoder = RecordDecoder(self.manifest.channels, config.records)
        self.store = make_window_store(config.windows, self.manifest.channels)
        self.batcher = DynamicBatcher(config.batching.max_batch, config.batching.max_wait_ms)
        self.offsets = OffsetTracker()
        hop, length = config.windows.hop, config.windows.length
        self.resume = ResumeFilter(skip_after_anchor=max(hop - length, 0))
        self.labels = np.array(self.manifest.labels, dtype=object)
        self.model_ref = ModelRef(name=self.manifest.name, version=self.manifest.version)
        self.alerts = AlertEvaluator(config.alerts) if config.alerts else None
        self.side_requests = SideQueue()  # HTTP classification riding in the stream's batches
        for rule in config.alerts:
            self.metrics.alerts.labels(rule.name)  # the series exists at 0 before the first alert
        self._stop = threading.Event()
        self._produced = _Produced()
        self._paused: list[TopicPartition] = []  # paused by backpressure (not by a replay's end)
        self._last_commit_s = time.monotonic()
        self._last_housekeeping_s = 0.0
        self._last_poll_s = 0.0
        self._catching_up = False  # the last poll returned a backlog's worth of records
        self._counters_seen: dict[str, int] = {}
        self.watchdog = ConsumerWatchdog(config.kafka.stall_timeout_s)
        self.outage = BrokerOutage(config.delivery.broker_outage_s, self.metrics.broker_unreachable)
        self.outage_recovery = OutageRecovery(self)
        self.replay_anchors: dict[
            tuple[int, str], int
        ] = {}  # (source, device) -> anchor, bounded runs
        self.consumer = None
        self.producer: LatchingProducer | None = None
        self.inference: InferenceThread | None = None

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
        if self.watchdog.stalled:
            return False, f"consumer stalled: {self.watchdog.stalled}"
        if self.outage.active:
            return False, f"broker unreachable for {self.outage.seconds():.0f} s"
        return True, f"model={self.manifest.name}:{self.manifest.version}"

    def open(self) -> None:
        """Connect the clients and subscribe (partitions arrive with the first polls)."""
        kafka = self.config.kafka
        self.metrics.model_info.labels(
            self.manifest.name,
            self.manifest.version,
            self.manifest.architecture,
            self.config.model.device,
        ).set(1)
        self.inference = InferenceThread(
            self.predictor, on_stream_error=self.metrics.predictor_errors.inc
        )
        if self.bounds is None and self.exactly_once:
            self.producer = self.open_transactional_producer()
        else:
            self.producer = LatchingProducer(kafka)
        if self.bounds is None:
            self.consumer = make_consumer(
                kafka, kafka.group_id, isolation_level=self.isolation_level
            )
            use_columnar_fetch(self.consumer)
            self.rebalance = RebalanceHandler(self)
            self.consumer.subscribe(kafka.input_topics, listener=self.rebalance)
            # One metadata fetch after subscribing, before the first join: a leader that
            # assigns without the inputs' partitions hands out nothing, and one whose
            # coordinator snapshot predates the subscription (metadata fetched before
            # subscribe) rebalances again as soon as the next metadata response lands.
            self.consumer.topics()
            return
        self.consumer = make_consumer(kafka, None)
        use_columnar_fetch(self.consumer)
        self.consumer.assign(list(self.bounds))
        for tp, (start, _) in self.bounds.items():
            self.offsets.assign(tp, None)
            self.consumer.seek(tp, start)

    def open_transactional_producer(self) -> LatchingProducer:
        """exactly-once: a producer with this replica's id, its transactions initialised."""
        kafka, delivery = self.config.kafka, self.config.delivery
        producer = LatchingProducer(
            kafka,
            transactional_id=delivery.transactional_id_for(kafka.group_id),
            transaction_timeout_ms=delivery.transaction_timeout_ms,
        )
        try:
            producer.producer.init_transactions()  # fences an earlier run of this replica
        except BaseException:
            producer.close(timeout_s=0)
            raise
        producer.begin()
        return producer

    @property
    def exactly_once(self) -> bool:
        """Events, dead letters, anchors and offsets go in one transaction per commit."""
        return self.config.delivery.mode == "exactly-once"

    @property
    def isolation_level(self) -> str:
        """What this worker reads of transactional topics (its inputs and the changelog)."""
        return "read_committed" if self.exactly_once else "read_uncommitted"

    @property
    def finished(self) -> bool:
        """A bounded (replay) run has read its whole range and handed everything on."""
        if self.bounds is None or self.batcher.pending or self.inference.in_flight:
            return False
        # position, not the last record seen: transaction markers take offsets too
        return all(self.consumer.position(tp) >= end for tp, (_, end) in self.bounds.items())

    def run(self) -> None:
        """Steps until a stop is requested (or a bounded range is done), then drains."""
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
        if self.inference is not None:
            self.inference.close()
        if self.consumer is not None:
            self.consumer.close(autocommit=False)  # revokes: the drain-and-commit hook runs
            if self.bounds is None:
                self.rebalance.close()
        if self.producer is not None:
            if self.exactly_once and self.bounds is None:
                self.producer.abort(
                    self.config.delivery.producer_flush_timeout_s
                )  # whatever `drain` could not commit is not half-visible
            self.producer.close()

    # -- the data path ----------------------------------------------------------
    def step(self) -> None:
        """One pass of the loop."""
        if self.outage.active:
            # an outage is not a stall: the watchdog's clock starts when the broker is back
            self.watchdog.excuse(time.monotonic())
            self.outage_recovery.ride_out()
            return
        records, index = self._poll()
        samples, dead_letters = self.decoder.decode(records)
        self._send_dead_letters(dead_letters)
        self._append_samples(samples, records, index)
        self._queue_ready_windows(index)
        self._submit_batches()
        self._produce_events(self.inference.collect(timeout_s=self._collect_wait_s()))
        self._maybe_commit()
        if self.outage.active:
            return  # the commit found the broker gone: its positions can't be asked for
        self._apply_backpressure()
        self._housekeeping()

    def _poll(self) -> tuple[PolledRecords, PollIndex]:
        fetched: dict[TopicPartition, list[RecordColumns]] = self.consumer.poll(
            timeout_ms=self._poll_timeout_ms(), max_records=self.config.kafka.max_poll_records
        )
        self._last_poll_s = time.monotonic()
        if self.bounds is None:
            self.rebalance.raise_if_failed()
        pieces: list[tuple[int, RecordColumns]] = []
        for tp, columns in fetched.items():
            if self.bounds is not None:
                columns = self._within_bounds(tp, columns)
            source = self.offsets.source_id(tp)
            pieces.extend((source, piece) for piece in columns if len(piece))
            self.metrics.records_consumed.labels(tp.topic).inc(sum(map(len, columns)))
        records = PolledRecords(pieces)
        self.stats.records += len(records)
        self._catching_up = len(records) >= self.config.kafka.max_poll_records // 4
        return records, records.poll_index()

    def _within_bounds(
        self, tp: TopicPartition, columns: list[RecordColumns]
    ) -> list[RecordColumns]:
        end = self.bounds[tp][1]
        if columns and columns[-1].offsets[-1] >= end - 1:
            self.consumer.pause(tp)  # nothing past the range is read
            self.offsets.consumed(self.offsets.source_id(tp), end)
        return [piece.pick(piece.offsets < end) for piece in columns]

    def _send_dead_letters(self, dead_letters: list[DeadLetter]) -> None:
        topic = self.config.kafka.dead_letter_topic
        for dl in dead_letters:
            record = dl.record
            source = self.offsets.source_id(TopicPartition(record.topic, record.partition))
            if record.offset <= self.offsets.skip_through(source):
                continue  # sent before a restart; replaying it must not send it twice
            key, value, headers = encode_dead_letter(dl, self.producer.max_request_bytes)
            self.producer.send(topic, value, key, headers)
            self.metrics.dead_letters.labels(dl.reason).inc()
            self.stats.count_dead_letter(dl.reason)

    def _append_samples(
        self, samples: SampleBatch, records: PolledRecords, index: PollIndex
    ) -> None:
        self.metrics.samples_consumed.inc(len(samples))
        self.stats.samples += len(samples)
        if len(samples):
            runs = self._resumed(samples)
            if len(runs):
                at = runs.record_positions  # [R] poll index of each run's record
                rejected = self.store.append_runs(
                    runs.record_devices,
                    runs.record_counts,
                    runs.timestamps_ms,
                    runs.values,
                    index.sources[at],
                    index.offsets[at],
                    now_ms=_now_ms(),
                )
                if len(rejected) and self.config.windows.late_policy == "dead_letter":
                    self._send_dead_letters(
                        policy_dead_letters(
                            records, samples.record_index, runs.record_index, rejected
                        )
                    )
        for source, next_offset in index.next_offsets().items():
            self.offsets.consumed(source, next_offset)

    def _resumed(self, samples: SampleBatch) -> SampleBatch:
        """The samples without those replayed for windows emitted before a restart."""
        if not self.resume.resuming:
            return samples
        keep = self.resume.keep_mask(samples.device_ids, samples.timestamps_ms)
        if keep is None or keep.all():
            return samples
        picked = np.flatnonzero(keep)
        device_ids = samples.device_ids
        return SampleBatch.from_samples(
            [device_ids[i] for i in picked.tolist()],
            samples.timestamps_ms[picked],
            samples.values[picked],
            samples.record_index[picked],
        )

    def _queue_ready_windows(self, index: PollIndex) -> None:
        rows = to_rows(self.store.ready_windows(), index, self.config.windows)
        if not len(rows):
            return
        emitted = self.offsets.already_emitted(rows.sources, rows.ready_offsets)
        if emitted.any():
            self.metrics.windows_skipped.inc(int(emitted.sum()))
            rows = rows.take(~emitted)
        self.batcher.add(rows)

    def _submit_batches(self, force: bool = False) -> None:
        while self.inference.can_submit():
            # waiting HTTP requests make the stream's partial batch due at once
            side = self.side_requests.take(self.config.batching.max_batch)
            batch = self.batcher.next_batch(time.monotonic(), force=force or bool(side))
            if batch is None and not side:
                return
            if batch is None:
                batch = WindowRows.empty(self.manifest.window_length, self.manifest.channels)
            self.inference.submit(batch, self.offsets.hold(batch), side)

    def _produce_events(self, classified: list[Classified]) -> None:
        for done in classified:
            self._produce_batch(done)

    def _produce_batch(self, done: Classified) -> None:
        rows, probabilities = done.rows, done.probabilities
        if not len(rows):  # a batch of HTTP requests only: answered by the predictor thread
            self._produced.tokens.append(done.token)
            return
        kafka = self.config.kafka
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
            self.manifest.labels,
            self.model_ref,
            sources,
            _now_ms(),
            self.event_extras,
        )
        for device_id, value in zip(rows.device_ids, encoded, strict=True):
            self.producer.send(kafka.output_topic, value, device_id.encode())
        self._produce_anchors(rows)
        class_ids = probabilities.argmax(axis=1)
        if self.alerts is not None:
            self._produce_alerts(rows, probabilities, class_ids)
        now_ms = _now_ms()
        latencies_s = (now_ms - rows.ready_record_ts_ms) / 1000.0
        self._observe(done, class_ids, latencies_s)
        self.board.add_batch(rows, probabilities, class_ids)
        self._produced.tokens.append(done.token)

    def _produce_alerts(
        self,
        rows: WindowRows,
        probabilities: npt.NDArray[np.float32],
        class_ids: npt.NDArray[np.int64],
    ) -> None:
        version = self.manifest.version
        ends = rows.end_ts_ms.tolist()
        fired = self.alerts.evaluate(
            rows.device_ids,
            self.labels[class_ids].tolist(),
            probabilities[np.arange(len(rows)), class_ids],
            rows.start_ts_ms,
            rows.end_ts_ms,
            [event_id(d, end, version) for d, end in zip(rows.device_ids, ends, strict=True)],
            time.time(),
        )
        for alert in fired:
            self.producer.send(
                self.config.kafka.alerts_topic, alert.to_json(), alert.device_id.encode()
            )
            self.metrics.alerts.labels(alert.rule).inc()
        self.board.add_alerts(fired)

    def _produce_anchors(self, rows: WindowRows) -> None:
        if self.bounds is not None:
            # the live group's changelog is not a replay's business; its resume file keeps them
            self.replay_anchors.update(latest_anchor_per_device(rows))
            return
        self._produced.anchors.update(latest_anchor_per_device(rows))

    def _write_anchors(self) -> None:
        """Send the anchors of windows whose events the broker has acknowledged.

        An anchor tells a new owner to skip a device's samples up to it; written
        before its window's event is acknowledged, a crash could lose that window.
        """
        state_topic = self.config.kafka.state_topic_name
        anchors, self._produced.anchors = self._produced.anchors, {}
        for (source, device), anchor in anchors.items():
            tp = self.offsets.partition(source)
            self.producer.send(
                state_topic,
                str(anchor).encode(),
                anchor_record_key(tp.topic, device),
                partition=tp.partition,
            )

    def _observe(
        self,
        done: Classified,
        class_ids: npt.NDArray[np.int64],
        latencies_s: npt.NDArray[np.float64],
    ) -> None:
        count = len(done.rows)
        self.metrics.batch_size.observe(count)
        self.metrics.inference_seconds.observe(done.inference_s)
        self.metrics.windows_emitted.inc(count)
        labels, counts = np.unique(class_ids, return_counts=True)
        for class_id, n in zip(labels.tolist(), counts.tolist(), strict=True):
            self.metrics.events.labels(self.labels[class_id]).inc(n)
        for latency in latencies_s.tolist():
            self.metrics.end_to_end_seconds.observe(latency)
        self.stats.record_batch(count, done.inference_s, latencies_s)

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
            if self.bounds is not None or not is_outage(exc):
                raise
            self.outage_recovery.began(exc)

    def commit_now(self) -> None:
        """Flush events, then their devices' anchors, then commit every safe position."""
        if self.inference is not None and self.inference.failed:
            return  # never commit after a predictor failure (the revoke at close lands here)
        flush_timeout_s = self.config.delivery.producer_flush_timeout_s
        self.producer.flush(flush_timeout_s)
        if self._produced.anchors:
            self._write_anchors()
            self.producer.flush(flush_timeout_s)
        for token in self._produced.tokens:
            self.offsets.release(token)
        self._produced.tokens.clear()
        if self.bounds is not None:
            self._last_commit_s = time.monotonic()
            return  # a replay never touches any group's offsets
        positions = self.offsets.positions(self.store.low_watermarks(), self.batcher.waiting())
        if self.exactly_once:
            self.producer.commit_with_offsets(
                positions, self.consumer.group_metadata(), flush_timeout_s
            )
            self.producer.begin()
        elif positions:
            try:
                self.consumer.commit(positions)
            except GROUP_MOVED as exc:
                # kicked out while the broker was away: the rejoin hands the partitions
                # out again from their last commit, so skipping this one loses nothing
                log.warning("commit refused: this worker is no longer in its group error=%s", exc)
                request_rejoin(self.consumer)
                self._last_commit_s = time.monotonic()
                return
        if positions:
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

    def _apply_backpressure(self) -> None:
        bound = self.config.batching.max_pending_windows
        pending = self._pending_windows()
        if not self._paused and pending > bound:
            self._paused = [
                tp for tp in self.consumer.assignment() if tp not in self.consumer.paused()
            ]
            self.consumer.pause(*self._paused)
            log.info("backpressure pause pending=%d bound=%d", pending, bound)
        elif self._paused and pending <= bound // 2:
            assigned = self.consumer.assignment()
            self.consumer.resume(*[tp for tp in self._paused if tp in assigned])
            self._paused = []
            log.info("backpressure resume pending=%d", pending)
        self.metrics.paused_partitions.set(len(self._paused))
        self.metrics.pending_windows.set(pending)

    def _poll_timeout_ms(self) -> int:
        if len(self.side_requests):
            return 0
        if self.inference.in_flight:
            return 2
        if self._catching_up:
            # kafka-python 3.0 sometimes finds neither buffered records nor a fetch in
            # flight right after a response landed, and then sleeps the whole timeout:
            # 100 ms stalls every ~7,000 records, 35 % of binary-chunk ingest time
            # (bench). While a backlog is read, a short timeout bounds that sleep; a
            # live stream's polls return on arrival anyway.
            return CATCH_UP_POLL_TIMEOUT_MS
        deadline = self.batcher.deadline_s()
        if deadline is not None:
            return int(max(0.0, min(deadline - time.monotonic(), 0.1)) * 1000)
        return 100

    def _collect_wait_s(self) -> float:
        # Block briefly for results only when the predictor is the bottleneck.
        return 0.005 if not self.inference.can_submit() else 0.0

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_housekeeping_s < HOUSEKEEPING_INTERVAL_S:
            return
        self._last_housekeeping_s = now
        self.store.evict_idle(_now_ms())
        self._export_store_counters()
        self.metrics.active_devices.set(self.store.active_devices)
        self.metrics.window_state_bytes.set(self.store.memory_bytes())
        assignment = self.consumer.assignment()
        self.metrics.assigned_partitions.set(len(assignment))
        owned_lag = 0
        lag_known = True
        paused = self.consumer.paused()
        for tp in assignment:
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            position = self._position_or_none(tp)
            if position is None:
                lag_known = False
                continue
            lag = max(highwater - position, 0)
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
            if tp not in paused and self.offsets.source_id(tp) in self.offsets.assigned_sources:
                owned_lag += lag
        if self.bounds is None and lag_known:
            self._watch_consumer(now, owned_lag)

    def _position_or_none(self, tp: TopicPartition) -> int | None:
        # position() may validate offsets over the network (KIP-320) right after the
        # broker came back; a broker that is gone again must not stop the worker here:
        # the next poll or commit finds the outage, and the lag is asked again later.
        try:
            return self.consumer.position(tp, timeout_ms=POSITION_TIMEOUT_MS)
        except KafkaError as exc:
            log.debug("position of %s[%d] unknown: %s", tp.topic, tp.partition, exc)
            return None

    def _watch_consumer(self, now_s: float, owned_lag: int) -> None:
        view = ConsumerView(
            now_s=now_s,
            owned_partitions=len(self.offsets.assigned_sources),
            stable_member=is_stable_member(self.consumer),
            lag=owned_lag,
            records_total=self.stats.records,
        )
        reason = self.watchdog.check(view)
        if reason:
            self.metrics.consumer_stalls.inc()
            log.warning(
                "consumer stalled for %.0f s (%s): rejoining the group",
                self.watchdog.stall_timeout_s,
                reason,
            )
            request_rejoin(self.consumer)

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

    # -- giving work back -------------------------------------------------------
    def forget_uncommitted(self, partitions: list[TopicPartition]) -> None:
        """Drop everything since the last commit; `partitions` (all owned) are re-read later.

        In-flight batches and the produced-but-uncommitted list mix partitions, so this
        is only safe over every owned partition: their offsets are forgotten with them.
        """
        while self.inference.in_flight:  # their events are not to be produced now
            for done in self.inference.collect(timeout_s=0.05):
                self.offsets.release(done.token)
        self.batcher.drain()
        for token in self._produced.tokens:
            self.offsets.release(token)
        self._produced.tokens.clear()
        self._produced.anchors.clear()
        sources = [self.offsets.revoke(tp) for tp in partitions]
        self.store.drop_sources(sources)
        self.resume.drop_sources(sources)

    def restart_transaction(self) -> None:
        """exactly-once: abort the open transaction by fencing it with a fresh producer."""
        if self.producer is not None:
            self.producer.close(timeout_s=0)
            self.producer = None
        self.producer = self.open_transactional_producer()

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
        self.commit()
        log.info("drained complete=%s windows=%d", complete, self.stats.windows)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
