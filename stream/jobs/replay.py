"""Backfill replay: a time range of the input topics, relabeled by a bounded worker.

A replay is the live worker on a manual assignment of offset ranges (no group,
no commits, no changelog writes). This module turns `--from/--to` into those
ranges, names the job, keeps its resume file, and runs it:

1. parse the times (epoch ms or ISO-8601 with an offset);
2. look up offsets by Kafka record timestamp with a group-less consumer and
   resolve per partition [first record with ts >= from, first record with ts >= to);
3. derive the job id from the resolved ranges, the model and the window config,
   so the same range with the same model gives the same id and the same events;
4. run the worker; on a stop, keep per partition the offset to resume from (the
   low watermark, not the next offset: windows still filling need older samples)
   and each device's anchor, so a resumed run cuts the same windows.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import orjson
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition

from stream.core.offsets import CommitMetadata
from stream.errors import SensorstreamError
from stream.kafka.clients import client_settings, make_consumer

if TYPE_CHECKING:
    from stream.config.schema import Config, KafkaConfig
    from stream.core.worker import Worker

log = logging.getLogger(__name__)

BACKFILL_SUFFIX = ".backfill"
STATE_VERSION = 1
TIME_FORMS = (
    "epoch milliseconds (e.g. 1732280000123) or ISO-8601 with an offset (e.g. 2024-11-22T12:00:00Z)"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last one datetime can print

Status = Literal["running", "stopped", "completed"]


class ReplayError(SensorstreamError):
    """A replay argument or stored job that cannot be used; the message says what to pass."""


# -- times -----------------------------------------------------------------------
def parse_time(text: str, flag: str, keyword: str) -> int | None:
    """Epoch ms of a --from/--to value, or None for its keyword (earliest / now)."""
    value = text.strip()
    if value.lower() == keyword:
        return None
    if re.fullmatch(r"\d+", value):
        return _in_range(int(value), text, flag)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ReplayError(f"{flag} {text!r}: expected {keyword}, {TIME_FORMS}")
    return _in_range((moment - _EPOCH) // timedelta(milliseconds=1), text, flag)


def _in_range(timestamp_ms: int, text: str, flag: str) -> int:
    """timestamp_ms if Kafka and datetime can hold it (1970 to 9999), else one line saying so."""
    if not 0 <= timestamp_ms <= MAX_TIME_MS:
        raise ReplayError(
            f"{flag} {text!r}: expected a time from 1970-01-01T00:00:00Z to "
            f"9999-12-31T23:59:59.999Z (epoch ms 0 to {MAX_TIME_MS})"
        )
    return timestamp_ms


def format_ms(timestamp_ms: int) -> str:
    """An epoch-ms timestamp as ISO-8601 UTC with milliseconds."""
    moment = _EPOCH + timedelta(milliseconds=timestamp_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_order(from_ms: int | None, to_ms: int | None) -> None:
    """--to must lie after --from when both are times."""
    if from_ms is not None and to_ms is not None and to_ms <= from_ms:
        raise ReplayError(
            f"--to {format_ms(to_ms)} is not after --from {format_ms(from_ms)}; "
            "pass a --to later than --from (or now)"
        )


# -- ranges ----------------------------------------------------------------------
@dataclass(frozen=True)
class PartitionFacts:
    """What the broker says about one partition before a replay starts."""

    beginning: int  # oldest retained offset
    end: int  # next offset to be written (the high watermark at lookup time)
    oldest_ts_ms: int | None  # Kafka timestamp of the oldest retained record; None if empty
    from_offset: int | None  # first offset with timestamp >= from; None if none
    to_offset: int | None  # first offset with timestamp >= to; None if none


@dataclass(frozen=True)
class ResolvedRange:
    """Per-partition [start, end) offsets of a replay, and notes for the user."""

    bounds: dict[TopicPartition, tuple[int, int]]
    notes: tuple[str, ...] = ()


def resolve_range(
    facts: Mapping[TopicPartition, PartitionFacts], from_ms: int | None, to_ms: int | None
) -> ResolvedRange:
    """Offset ranges for [from, to) by record timestamp (None = earliest / end at start)."""
    check_order(from_ms, to_ms)
    filled = {tp: f for tp, f in facts.items() if f.end > f.beginning}
    if not filled:
        raise ReplayError("the topics hold no retained records; nothing to replay")
    if from_ms is not None and all(f.from_offset is None for f in filled.values()):
        raise ReplayError(
            f"--from {format_ms(from_ms)} is after the newest retained record; "
            "pass an earlier time or earliest"
        )
    bounds: dict[TopicPartition, tuple[int, int]] = {}
    for tp in sorted(filled, key=lambda t: (t.topic, t.partition)):
        f = filled[tp]
        start = f.beginning if from_ms is None else _clamp(f.from_offset, f)
        stop = f.end if to_ms is None else _clamp(f.to_offset, f)
        if stop > start:
            bounds[tp] = (start, stop)
    if not bounds:
        raise ReplayError(
            f"no records between --from {format_ms(from_ms or 0)} and --to "
            f"{format_ms(to_ms or 0)}; widen the range"
        )
    return ResolvedRange(bounds, _retention_notes(filled, from_ms))


def _clamp(offset: int | None, facts: PartitionFacts) -> int:
    """An offset looked up by time, inside [beginning, end] (None: past the end)."""
    if offset is None:
        return facts.end
    return min(max(offset, facts.beginning), facts.end)


def _retention_notes(
    filled: Mapping[TopicPartition, PartitionFacts], from_ms: int | None
) -> tuple[str, ...]:
    if from_ms is None:
        return ()
    early = [
        f.oldest_ts_ms
        for f in filled.values()
        if f.oldest_ts_ms is not None and f.oldest_ts_ms > from_ms
    ]
    if not early:
        return ()
    return (
        f"note: --from {format_ms(from_ms)} is before the oldest retained record of "
        f"{len(early)} of {len(filled)} partitions (oldest {format_ms(min(early))}); "
        "they start at their oldest retained record",
    )


def lookup_facts(
    consumer: KafkaConsumer, topics: list[str], from_ms: int | None, to_ms: int | None
) -> dict[TopicPartition, PartitionFacts]:
    """Per partition of `topics`: retained offsets and the offsets of from/to (no group)."""
    tps: list[TopicPartition] = []
    for topic in topics:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            known = sorted(t for t in consumer.topics() if not t.startswith("__"))
            shown = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
            raise ReplayError(
                f"--topics: unknown topic {topic!r}; existing topics: {shown or 'none'}"
            )
        tps += [TopicPartition(topic, p) for p in sorted(partitions)]
    beginning = consumer.beginning_offsets(tps)
    end = consumer.end_offsets(tps)
    oldest = consumer.offsets_for_times({tp: 0 for tp in tps})
    at_from = consumer.offsets_for_times({tp: from_ms for tp in tps}) if from_ms is not None else {}
    at_to = consumer.offsets_for_times({tp: to_ms for tp in tps}) if to_ms is not None else {}
    return {
        tp: PartitionFacts(
            beginning=beginning[tp],
            end=end[tp],
            oldest_ts_ms=oldest[tp].timestamp if oldest.get(tp) else None,
            from_offset=at_from[tp].offset if at_from.get(tp) else None,
            to_offset=at_to[tp].offset if at_to.get(tp) else None,
        )
        for tp in tps
    }


# -- jobs and their resume files ---------------------------------------------------
@dataclass(frozen=True)
class PartitionProgress:
    """One partition of a job: its range, where to resume, and the devices' anchors."""

    topic: str
    partition: int
    start: int
    end: int
    resume_offset: int  # = start before any run; = end once the partition is done
    emitted_through: int = -1  # windows completed at or below this offset were emitted
    anchors: dict[str, int] = field(default_factory=dict)  # device -> ts of its last window end

    @property
    def tp(self) -> TopicPartition:
        """The topic-partition."""
        return TopicPartition(self.topic, self.partition)

    @property
    def done(self) -> bool:
        """Nothing of this partition is left to read."""
        return self.resume_offset >= self.end


@dataclass(frozen=True)
class ReplayJob:
    """A replay: what it reads, where it writes, with which model, and how far it got."""

    job_id: str
    topics: tuple[str, ...]
    from_ms: int | None
    to_ms: int | None
    output_topic: str
    dead_letter_topic: str
    model_name: str
    model_version: str
    partitions: tuple[PartitionProgress, ...]
    status: Status = "running"

    def bounds(self) -> dict[TopicPartition, tuple[int, int]]:
        """[resume offset, end) of every partition not done yet (what the worker reads)."""
        return {p.tp: (p.resume_offset, p.end) for p in self.partitions if not p.done}

    def records_left(self) -> int:
        """Offsets still to read (records, plus the odd transaction marker)."""
        return sum(p.end - p.resume_offset for p in self.partitions if not p.done)

    def to_json(self) -> bytes:
        """The resume file's content."""
        fields = {k: v for k, v in self.__dict__.items() if k != "partitions"}
        doc = {"version": STATE_VERSION, **fields}
        doc["partitions"] = [p.__dict__ for p in self.partitions]
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2)

    @staticmethod
    def from_json(data: bytes) -> ReplayJob:
        """Parse a resume file written by `to_json`."""
        doc = orjson.loads(data)
        if doc.pop("version", None) != STATE_VERSION:
            raise ValueError(f"expected version {STATE_VERSION}")
        partitions = tuple(PartitionProgress(**p) for p in doc.pop("partitions"))
        return ReplayJob(**{**doc, "topics": tuple(doc["topics"]), "partitions": partitions})


def make_job_id(
    bounds: Mapping[TopicPartition, tuple[int, int]],
    model_name: str,
    model_version: str,
    windows: Mapping[str, object],
) -> str:
    """12 hex digits of sha256 over the resolved ranges, the model and the window config."""
    ranges = sorted([tp.topic, tp.partition, start, end] for tp, (start, end) in bounds.items())
    doc = {"ranges": ranges, "model": [model_name, model_version], "windows": dict(windows)}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def state_dir() -> Path:
    """Where resume files live: $XDG_CACHE_HOME/sensorstream/replay (default ~/.cache)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sensorstream" / "replay"


def save_job(job: ReplayJob, directory: Path) -> Path:
    """Write the job's resume file atomically; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{job.job_id}.json"
    scratch = path.with_suffix(".tmp")
    scratch.write_bytes(job.to_json())
    scratch.replace(path)
    return path


def load_job(job_id: str, directory: Path) -> ReplayJob:
    """The stored job `job_id`, or one line saying why it cannot be resumed."""
    if not re.fullmatch(r"[0-9a-f]{12}", job_id):
        raise ReplayError(
            f"--resume {job_id!r}: expected a 12-hex-digit job id as printed when a replay stops"
        )
    path = directory / f"{job_id}.json"
    try:
        job = ReplayJob.from_json(path.read_bytes())
    except FileNotFoundError:
        raise ReplayError(
            f"--resume {job_id}: no resume file {path}; start the replay again with --from"
        ) from None
    except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
        raise ReplayError(
            f"--resume {job_id}: {path} is unreadable ({exc}); start the replay again with --from"
        ) from None
    if job.status == "completed":
        raise ReplayError(f"--resume {job_id}: the job already completed; nothing to resume")
    return job


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
    predictor: object,
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
