"""The worker's intake: a poll's records to queued windows.

    poll -> decode -> append to the device buffers -> ready windows -> dynamic batcher

Dead letters are handed back, not produced here: the worker owns the producer, whose
failures decide between an outage and a stop.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from stream.config.schema import Config
from stream.core.batching import DynamicBatcher
from stream.core.checkpoint import Checkpoint
from stream.core.metrics import WorkerMetrics
from stream.core.offsets import OffsetTracker
from stream.core.recovery import ResumeFilter
from stream.core.stats import WorkerStats
from stream.core.window_bridge import make_window_store, policy_dead_letters, to_rows
from stream.decode.polled import PolledRecords, PollIndex
from stream.decode.router import RecordDecoder
from stream.decode.types import DeadLetter, SampleBatch
from stream.kafka.record_columns import RecordColumns

CATCH_UP_POLL_TIMEOUT_MS = 5


class Intake:
    """Decoder, device buffers, resume filter and batcher, fed one poll at a time."""

    def __init__(
        self,
        config: Config,
        channels: int,
        offsets: OffsetTracker,
        metrics: WorkerMetrics,
        stats: WorkerStats,
    ) -> None:
        self.config = config
        self.offsets = offsets
        self.metrics = metrics
        self.stats = stats
        self.decoder = RecordDecoder(channels, config.records)
        self.store = make_window_store(config.windows, channels)
        self.batcher = DynamicBatcher(config.batching.max_batch, config.batching.max_wait_ms)
        hop, length = config.windows.hop, config.windows.length
        self.resume = ResumeFilter(skip_after_anchor=max(hop - length, 0))
        self.catching_up = False  # the last poll returned a backlog's worth of records

    def poll(
        self, consumer: KafkaConsumer, checkpoint: Checkpoint, timeout_ms: int
    ) -> tuple[PolledRecords, PollIndex]:
        """One poll, clipped to what belongs to the run, as records with their positions."""
        max_records = self.config.kafka.max_poll_records
        fetched: dict[TopicPartition, list[RecordColumns]] = consumer.poll(
            timeout_ms=timeout_ms, max_records=max_records
        )
        checkpoint.after_poll()
        pieces: list[tuple[int, RecordColumns]] = []
        for tp, columns in fetched.items():
            columns = checkpoint.clip(tp, columns)
            source = self.offsets.source_id(tp)
            pieces.extend((source, piece) for piece in columns if len(piece))
            self.metrics.records_consumed.labels(tp.topic).inc(sum(map(len, columns)))
        records = PolledRecords(pieces)
        self.stats.records += len(records)
        self.catching_up = len(records) >= max_records // 4
        return records, records.poll_index()

    def append(
        self, samples: SampleBatch, records: PolledRecords, index: PollIndex, now_ms: int
    ) -> list[DeadLetter]:
        """Samples into the device buffers; the records the window policy turned away."""
        self.metrics.samples_consumed.inc(len(samples))
        self.stats.samples += len(samples)
        late: list[DeadLetter] = []
        runs = self.resume.without_emitted(samples) if len(samples) else samples
        if len(runs):
            at = runs.record_positions  # [R] poll index of each run's record
            rejected = self.store.append_runs(
                runs.record_devices,
                runs.record_counts,
                runs.timestamps_ms,
                runs.values,
                index.sources[at],
                index.offsets[at],
                now_ms=now_ms,
            )
            if len(rejected) and self.config.windows.late_policy == "dead_letter":
                late = policy_dead_letters(
                    records, samples.record_index, runs.record_index, rejected
                )
        for source, next_offset in index.next_offsets().items():
            self.offsets.consumed(source, next_offset)
        return late

    def queue_ready_windows(self, index: PollIndex) -> None:
        """Windows the buffers completed go to the batcher, less those already emitted."""
        rows = to_rows(self.store.ready_windows(), index, self.config.windows)
        if not len(rows):
            return
        emitted = self.offsets.already_emitted(rows.sources, rows.ready_offsets)
        if emitted.any():
            self.metrics.windows_skipped.inc(int(emitted.sum()))
            rows = rows.take(~emitted)
        self.batcher.add(rows)

    def poll_timeout_ms(self, requests_waiting: bool, in_flight: bool) -> int:
        """How long the next poll may block without delaying anything that is due."""
        if requests_waiting:
            return 0
        if in_flight:
            return 2
        if self.catching_up:
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
