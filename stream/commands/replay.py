"""`sensorstream replay`: relabel a time range of the input topics into a backfill topic."""

from __future__ import annotations

import argparse
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from stream.commands.run import add_config_arguments

if TYPE_CHECKING:
    from stream.config.schema import Config
    from stream.core.worker import Worker
    from stream.jobs.replay.job import ReplayJob
    from stream.jobs.replay.ranges import ResolvedRange
    from stream.jobs.replay.run import ReplayResult
    from timesnet.batch_predictor import BatchPredictor
    from timesnet.manifest import ModelManifest


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `replay`."""
    parser = subparsers.add_parser(
        "replay",
        help="classify a time range of the input topics again (backfill)",
        description="Read the input topics between two Kafka record timestamps without any "
        "consumer group, run the same windows, batching and model as the worker, and write "
        "events marked replay=true with a job id to the output topic + '.backfill'. "
        "Ctrl-C stops cleanly and prints how to --resume.",
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--from",
        dest="from_time",
        metavar="TIME|earliest",
        help="start: epoch ms, ISO-8601 with an offset, or earliest",
    )
    parser.add_argument(
        "--to",
        dest="to_time",
        metavar="TIME|now",
        help="end, exclusive (default now: the end offsets when the job starts)",
    )
    parser.add_argument(
        "--topics",
        nargs="+",
        metavar="TOPIC",
        help="input topics (default: kafka.input_topics of the config)",
    )
    parser.add_argument(
        "--output-topic", help="events topic (default: kafka.output_topic + '.backfill')"
    )
    parser.add_argument("--model", help="model folder (default: [model] path of the config)")
    parser.add_argument("--resume", metavar="JOB", help="continue a stopped job where it stopped")
    parser.set_defaults(func=replay)


def replay(args: argparse.Namespace) -> int:
    """Resolve (or reload) the job, run it, print the summary; 0 when done or cleanly stopped."""
    from stream.config.loading import load_config
    from stream.jobs.replay.job import state_dir
    from stream.jobs.replay.run import run_job

    config = load_config(args.config, args.overrides)
    if args.model:
        model = config.model.model_copy(update={"path": Path(args.model).expanduser().resolve()})
        config = config.model_copy(update={"model": model})
    directory = state_dir()
    if args.resume:
        job = _stored_job(args, directory)
        predictor = _load_model(config)
        _check_same_model(job, predictor.manifest)
    else:
        request = _Request.from_args(args, config)  # Kafka lookups before the slow model load
        predictor = _load_model(config)
        job = request.job(config, predictor.manifest)
        for note in request.resolved.notes:
            print(note, file=sys.stderr)
        if (directory / f"{job.job_id}.json").is_file():
            print(
                f"note: job {job.job_id} ran before; this run starts it over "
                f"(--resume {job.job_id} would continue a stopped run)",
                file=sys.stderr,
            )
    print(_start_line(job), file=sys.stderr, flush=True)
    result = run_job(job, config, predictor, directory, watch=_progress_on_stderr)
    for line in summary_lines(result):
        print(line)
    if result.job.status == "stopped":
        for line in _stopped_lines(result.job, args):
            print(line)
    return 0


@dataclass(frozen=True)
class _Request:
    """A new job's arguments, checked, with its offset ranges resolved."""

    from_ms: int | None
    to_ms: int | None
    topics: tuple[str, ...]
    output_topic: str
    resolved: ResolvedRange

    @staticmethod
    def from_args(args: argparse.Namespace, config: Config) -> _Request:
        """Parse and check the arguments, then resolve the range on the broker."""
        from stream.errors import SensorstreamError
        from stream.jobs.replay.job import BACKFILL_SUFFIX
        from stream.jobs.replay.ranges import check_order, parse_time

        if args.from_time is None:
            raise SensorstreamError(
                "--from is required: a TIME (epoch ms or ISO-8601 with an "
                "offset) or earliest; or pass --resume JOB"
            )
        from_ms = parse_time(args.from_time, "--from", "earliest")
        to_ms = parse_time(args.to_time or "now", "--to", "now")
        check_order(from_ms, to_ms)
        names = args.topics or config.kafka.input_topics
        topics = tuple(t for item in names for t in item.split(",") if t)
        output = args.output_topic or config.kafka.output_topic + BACKFILL_SUFFIX
        _check_topics(topics, output)
        if output in topics:
            raise SensorstreamError(f"--output-topic {output!r} is an input topic; pick another")
        return _Request(from_ms, to_ms, topics, output, _resolve(config, topics, from_ms, to_ms))

    def job(self, config: Config, manifest: ModelManifest) -> ReplayJob:
        """The job for this request and model, named by its ranges, model and windows."""
        from stream.jobs.replay.job import (
            BACKFILL_SUFFIX,
            PartitionProgress,
            ReplayJob,
            make_job_id,
        )

        bounds = self.resolved.bounds
        windows = config.windows.model_dump(mode="json")
        return ReplayJob(
            job_id=make_job_id(bounds, manifest.name, manifest.version, windows),
            topics=self.topics,
            from_ms=self.from_ms,
            to_ms=self.to_ms,
            output_topic=self.output_topic,
            dead_letter_topic=config.kafka.dead_letter_topic + BACKFILL_SUFFIX,
            model_name=manifest.name,
            model_version=manifest.version,
            partitions=tuple(
                PartitionProgress(tp.topic, tp.partition, start, end, resume_offset=start)
                for tp, (start, end) in bounds.items()
            ),
        )


def _check_topics(topics: tuple[str, ...], output: str) -> None:
    """--topics and --output-topic as names Kafka accepts, or one line naming the flag."""
    from stream.config.schema import check_topic_name
    from stream.errors import SensorstreamError

    for flag, names in (("--topics", topics), ("--output-topic", (output,))):
        try:
            for name in names:
                check_topic_name(name)
        except ValueError as exc:
            raise SensorstreamError(f"{flag}: {exc}") from None
    if not topics:
        raise SensorstreamError("--topics: expected at least one topic name")


def _load_model(config: Config) -> BatchPredictor:
    """The model, with the same windows-fit-the-model and memory checks as `run`."""
    from stream.config.model_checks import check_abstain_label, check_against_model
    from stream.service import load_model

    predictor = load_model(config)
    manifest = predictor.manifest
    check_against_model(config, manifest.window_length, manifest.channels)
    check_abstain_label(config.model, manifest.labels)
    return predictor


def _resolve(
    config: Config, topics: tuple[str, ...], from_ms: int | None, to_ms: int | None
) -> ResolvedRange:
    from kafka.errors import KafkaError

    from stream.errors import SensorstreamError
    from stream.jobs.replay.ranges import lookup_facts, resolve_range
    from stream.kafka.clients import make_consumer

    try:
        consumer = make_consumer(config.kafka, None, allow_auto_create_topics=False)
    except KafkaError as exc:
        raise SensorstreamError(
            f"cannot reach Kafka at {config.kafka.bootstrap_servers} ({exc}); start a broker "
            "(sensorstream kafka start) or fix kafka.bootstrap_servers"
        ) from exc
    try:
        return resolve_range(lookup_facts(consumer, list(topics), from_ms, to_ms), from_ms, to_ms)
    finally:
        consumer.close()


def _stored_job(args: argparse.Namespace, directory: Path) -> ReplayJob:
    from stream.errors import SensorstreamError
    from stream.jobs.replay.job import load_job

    flags = (
        ("--from", args.from_time),
        ("--to", args.to_time),
        ("--topics", args.topics),
        ("--output-topic", args.output_topic),
    )
    given = [flag for flag, value in flags if value]
    if given:
        raise SensorstreamError(
            f"--resume continues the stored range and topics; drop {', '.join(given)}"
        )
    return load_job(args.resume, directory)


def _check_same_model(job: ReplayJob, manifest: ModelManifest) -> None:
    from stream.errors import SensorstreamError

    if (manifest.name, manifest.version) != (job.model_name, job.model_version):
        raise SensorstreamError(
            f"--resume {job.job_id}: the job ran with model {job.model_name}:{job.model_version}, "
            f"the config loads {manifest.name}:{manifest.version}; pass --model DIR of that model"
        )


def _start_line(job: ReplayJob) -> str:
    from stream.jobs.replay.ranges import format_ms

    span = " -> ".join(
        format_ms(ms) if ms is not None else word
        for ms, word in ((job.from_ms, "earliest"), (job.to_ms, "end at start"))
    )
    partitions = sum(not p.done for p in job.partitions)
    return (
        f"replay {job.job_id}: {span} of {','.join(job.topics)}, {job.records_left():,} "
        f"records in {partitions} partitions -> {job.output_topic} "
        f"(model {job.model_name}:{job.model_version})"
    )


def summary_lines(result: ReplayResult) -> list[str]:
    """The final summary: counts, events by label, dead letters by reason, throughput."""
    job = result.job
    labels = ", ".join(f"{k} {v:,}" for k, v in sorted(result.events_by_label.items()))
    dead = ", ".join(f"{k} {v:,}" for k, v in sorted(result.dead_letters.items()))
    multiple, span_ms = result.real_time_multiple, result.span_ms
    real_time = (
        f", {multiple:,.1f}x real time ({span_ms / 1000:,.1f} s of record time)"
        if multiple is not None and span_ms is not None
        else ""
    )
    windows_per_s = result.windows / max(result.wall_s, 1e-9)
    return [
        f"replay {job.job_id}: {job.status}",
        f"  records       {result.records:,}   samples {result.samples:,}   "
        f"windows {result.windows:,}",
        f"  events        {sum(result.events_by_label.values()):,} to {job.output_topic}: "
        f"{labels or 'none'}",
        f"  dead letters  {sum(result.dead_letters.values()):,} to {job.dead_letter_topic}: "
        f"{dead or 'none'}",
        f"  throughput    {result.samples_per_s:,.0f} samples/s, {windows_per_s:,.1f} windows/s "
        f"over {result.wall_s:.1f} s{real_time}",
    ]


def _stopped_lines(job: ReplayJob, args: argparse.Namespace) -> list[str]:
    where = ", ".join(
        f"{p.topic}[{p.partition}] "
        + ("done" if p.done else f"at {p.resume_offset} of [{p.start}, {p.end})")
        for p in job.partitions
    )
    command = ["sensorstream", "replay"]
    if args.config:
        command += ["--config", args.config]
    for item in args.overrides:
        command += ["--set", item]
    if args.model:
        command += ["--model", args.model]
    command += ["--resume", job.job_id]
    return [
        f"  stopped at    {where}",
        f"  resume with   {shlex.join(command)}",
    ]


@contextmanager
def _progress_on_stderr(worker: Worker, job: ReplayJob) -> Iterator[None]:
    progress = ProgressLine(worker, job.records_left(), job.job_id, sys.stderr)
    progress.start()
    try:
        yield
    finally:
        progress.stop()


class ProgressLine:
    """Records and samples done, rates and ETA, refreshed from a background thread.

    On a terminal one line rewritten with \\r twice a second; otherwise a line every 5 s.
    """

    def __init__(
        self,
        worker: Worker,
        total_records: int,
        job_id: str,
        out: TextIO,
        interval_s: float | None = None,
    ) -> None:
        self.worker = worker
        self.total_records = total_records
        self.job_id = job_id
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.interval_s = interval_s if interval_s is not None else (0.5 if self.tty else 5.0)
        self._started_s = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="replay-progress", daemon=True)

    def start(self) -> None:
        """Start refreshing."""
        self._started_s = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Write the final state and stop refreshing."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._write()
        if self.tty:
            self.out.write("\n")
        self.out.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._write()

    def line(self) -> str:
        """The current progress line."""
        stats = self.worker.stats
        records, samples, windows = stats.records, stats.samples, stats.windows
        elapsed_s = max(time.monotonic() - self._started_s, 1e-9)
        record_rate, window_rate = records / elapsed_s, windows / elapsed_s
        # Records run ahead of the predictor up to the backpressure bound: the ETA is
        # whichever of reading and classifying what is already read takes longer.
        pending = self.worker.metrics.registry.get_sample_value("sensorstream_pending_windows") or 0
        left_s = [
            (self.total_records - records) / record_rate if record_rate else None,
            pending / window_rate if window_rate else None,
        ]
        eta = "--" if left_s[0] is None else _duration(max(s or 0.0 for s in left_s))
        share = records / self.total_records if self.total_records else 1.0
        return (
            f"replay {self.job_id}: {share * 100:5.1f}% records {records:,}/{self.total_records:,} "
            f"samples {samples:,} windows {windows:,} | {record_rate:,.0f} records/s "
            f"{samples / elapsed_s:,.0f} samples/s | ETA {eta}"
        )

    def _write(self) -> None:
        text = self.line()
        self.out.write(f"\r{text:<118}" if self.tty else text + "\n")
        self.out.flush()


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
