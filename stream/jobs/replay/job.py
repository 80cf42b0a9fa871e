"""Replay jobs: what a job reads and writes, its id, and the resume file of how far it got."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson
from kafka.structs import TopicPartition

from stream.jobs.replay.ranges import ReplayError

BACKFILL_SUFFIX = ".backfill"
STATE_VERSION = 1

Status = Literal["running", "stopped", "completed"]


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
