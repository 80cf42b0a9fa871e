"""Running a replay job: the live worker on the job's ranges, stopped and resumed exactly.

On a stop, each partition keeps the offset to resume from (the low watermark, not
the next offset: windows still filling need older samples) and each device's
anchor, so a resumed run cuts the same windows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition

from stream.core.offsets import CommitMetadata
from stream.jobs.replay.job import BACKFILL_SUFFIX, ReplayJob, Status, save_job
from stream.kafka.clients import client_settings, make_consumer

if TYPE_CHECKING:
    from stream.config.schema import Config, KafkaConfig
    from stream.core.worker import Worker
    from timesnet.batch_predictor import BatchPredictor

log = logging.getLogger(__name__)


def stop_point(
    job: ReplayJob, worker: Worker, kept_anchors: Mapping[tuple[int, str], int], finished: bool
) -> ReplayJob:
    """The job after a run: per partition the offset to resume from, emitted position, anchors."""
    if finished:
        done = tuple(replace(p, resume_offset=p.end) for p in job.partitions)
        return replace(job, partitions=done, status="completed")
    offsets = worker.offsets
    # Flushed and drained by now: positions() is the low watermark over unfinished
    # windows and whatever could not be drained, exactly what a commit would hold.
    positions = offsets.positions(worker.store.low_watermarks(), worker.batcher.waiting())
    anchors: dict[TopicPartition, dict[str, int]] = {}
    for (source, device), anchor in kept_anchors.items():
        anchors.setdefault(offsets.partition(source), {})[device] = anchor
    updated = []
    for p in job.partitions:
        merged = {**p.anchors, **anchors.get(p.tp, {})}
        if p.done or offsets.next_offset(offsets.source_id(p.tp)) >= p.end:
            updated.append(replace(p, resume_offset=p.end, anchors=merged))
        elif p.tp in positions:
            meta = positions[p.tp]
            emitted = max(p.emitted_through, CommitMetadata.decode(meta.metadata).emitted_through)
            updated.append(
                replace(
                    p,
                    resume_offset=max(meta.offset, p.resume_offset),
                    emitted_through=emitted,
                    anchors=merged,
                )
            )
        else:
            updated.append(replace(p, anchors=merged))  # nothing of it was read
    status: Status = "completed" if all(p.done for p in updated) else "stopped"
    return replace(job, partitions=tuple(updated), status=status)


def restore(job: ReplayJob, worker: Worker) -> None:
    """Before a resumed run: skip what was emitted and resume each device at its anchor."""
    for p in job.partitions:
        if p.done:
            continue
        meta = OffsetAndMetadata(p.resume_offset, CommitMetadata(p.emitted_through).encode(), -1)
        source = worker.offsets.assign(p.tp, meta)
        if p.anchors:
            worker.resume.add(source, dict(p.anchors))


# -- running ---------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayResult:
    """What one run of a job did, and the job as it stands after it."""

    job: ReplayJob
    records: int
    samples: int
    windows: int
    events_by_label: dict[str, int]
    dead_letters: dict[str, int]
    wall_s: float
    span_ms: int | None  # Kafka-timestamp span of the records this run covered

    @property
    def samples_per_s(self) -> float:
        """Samples decoded per wall-clock second."""
        return self.samples / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def real_time_multiple(self) -> float | None:
        """Event time covered per wall-clock time (None when the span is unknown)."""
        if self.span_ms is None or self.wall_s <= 0:
            return None
        return self.span_ms / 1000.0 / self.wall_s


def replay_config(config: Config, job: ReplayJob) -> Config:
    """The live config pointed at the job's topics; dead letters and alerts to `.backfill`."""
    kafka = config.kafka
    updated = kafka.model_copy(
        update={
            "input_topics": list(job.topics),
            "output_topic": job.output_topic,
            "dead_letter_topic": job.dead_letter_topic,
            "alerts_topic": kafka.alerts_topic + BACKFILL_SUFFIX,  # history must not page anyone
        }
    )
    return config.model_copy(update={"kafka": updated})


def ensure_output_topics(kafka: KafkaConfig, job: ReplayJob, with_alerts: bool) -> None:
    """Create the job's output topics that do not exist yet."""
    partitions = max((p.partition for p in job.partitions), default=0) + 1
    names = [job.output_topic, job.dead_letter_topic]
    names += [kafka.alerts_topic] if with_alerts else []
    admin = KafkaAdminClient(**client_settings(kafka))
    try:
        missing = [n for n in names if n not in set(admin.list_topics())]
        if missing:
            try:
                admin.create_topics([NewTopic(n, partitions, 1) for n in missing])
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s partitions=%d", ",".join(missing), partitions)
    finally:
        admin.close()


def covered_span_ms(
    kafka: KafkaConfig, bounds: Mapping[TopicPartition, tuple[int, int]]
) -> int | None:
    """Newest minus oldest Kafka timestamp among the first and last records of the ranges."""
    if not bounds:
        return None
    consumer = make_consumer(kafka, None, max_partition_fetch_bytes=65_536)
    try:
        firsts = _timestamps_at(consumer, {tp: start for tp, (start, _) in bounds.items()})
        lasts = _timestamps_at(consumer, {tp: end - 1 for tp, (_, end) in bounds.items()})
    finally:
        consumer.close()
    if not firsts or not lasts:
        return None
    return max(max(lasts.values()) - min(firsts.values()), 0)


def _timestamps_at(
    consumer: KafkaConsumer, offsets: dict[TopicPartition, int], timeout_s: float = 5.0
) -> dict[TopicPartition, int]:
    """Kafka timestamp of the record at (or first after) each offset."""
    consumer.assign(list(offsets))
    for tp, offset in offsets.items():
        consumer.seek(tp, offset)
    found: dict[TopicPartition, int] = {}
    deadline = time.monotonic() + timeout_s
    while len(found) < len(offsets) and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=200).items():
            if records and tp not in found:
                found[tp] = records[0].timestamp
                consumer.pause(tp)
    consumer.assign([])
    return found


def run_job(
    job: ReplayJob,
    config: Config,
    predictor: BatchPredictor,
    directory: Path,
    watch: Callable[[Worker, ReplayJob], AbstractContextManager[object]] | None = None,
) -> ReplayResult:
    """Run (or resume) a job until its range is done or SIGINT/SIGTERM; save where it stopped.

    `watch(worker, job)` is entered around the worker's run (the CLI's progress line).
    """
    from stream.core.checkpoint import RangeCheckpoint
    from stream.core.signals import stop_on_signals
    from stream.core.worker import Worker

    run_config = replay_config(config, job)
    ensure_output_topics(run_config.kafka, job, with_alerts=bool(run_config.alerts))
    extras = {"replay": True, "job_id": job.job_id}
    checkpoint = RangeCheckpoint(run_config, job.bounds())
    worker = Worker(run_config, predictor, event_extras=extras, checkpoint=checkpoint)
    save_job(replace(job, status="running"), directory)
    started_s = time.monotonic()
    worker.open()
    restore(job, worker)
    with watch(worker, job) if watch is not None else nullcontext(), stop_on_signals(worker):
        worker.run()
    wall_s = time.monotonic() - started_s
    after = stop_point(job, worker, checkpoint.anchors, finished=not worker.stopping)
    save_job(after, directory)
    span_ms = covered_span_ms(run_config.kafka, _read_ranges(job, after, worker))
    log.info(
        "replay job=%s status=%s windows=%d wall_s=%.1f",
        job.job_id,
        after.status,
        worker.stats.windows,
        wall_s,
    )
    return _result(after, worker, wall_s, span_ms)


def _read_ranges(
    before: ReplayJob, after: ReplayJob, worker: Worker
) -> dict[TopicPartition, tuple[int, int]]:
    """[first, one past the last) offset this run read, per partition."""
    offsets = worker.offsets
    ranges: dict[TopicPartition, tuple[int, int]] = {}
    for old, new in zip(before.partitions, after.partitions, strict=True):
        if old.done:
            continue
        stop = new.end if new.done else offsets.next_offset(offsets.source_id(old.tp))
        if stop > old.resume_offset:
            ranges[old.tp] = (old.resume_offset, stop)
    return ranges


def _result(job: ReplayJob, worker: Worker, wall_s: float, span_ms: int | None) -> ReplayResult:
    stats = worker.stats
    by_label = {label: stats.events_by_label[label] for label in worker.manifest.labels}
    return ReplayResult(
        job,
        stats.records,
        stats.samples,
        stats.windows,
        {k: v for k, v in by_label.items() if v},
        dict(stats.dead_letters),
        wall_s,
        span_ms,
    )
