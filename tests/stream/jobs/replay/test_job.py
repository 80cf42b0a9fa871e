"""Replay jobs: ids from ranges, model and windows; resume files written, read and refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
from kafka.structs import TopicPartition

from stream.jobs.replay.job import PartitionProgress, ReplayJob, load_job, make_job_id, save_job
from stream.jobs.replay.ranges import (
    ReplayError,
)

T0 = 1_700_000_000_000


A0, A1 = TopicPartition("a", 0), TopicPartition("a", 1)


WINDOWS = {"length": 315, "hop": 315}


def test_job_id_depends_only_on_ranges_model_and_windows() -> None:
    bounds = {A0: (10, 100), A1: (0, 40)}
    job_id = make_job_id(bounds, "uwave", "v1", WINDOWS)
    assert len(job_id) == 12 and int(job_id, 16) >= 0
    assert make_job_id(dict(reversed(list(bounds.items()))), "uwave", "v1", dict(WINDOWS)) == job_id
    different = [
        make_job_id({A0: (10, 101), A1: (0, 40)}, "uwave", "v1", WINDOWS),
        make_job_id({A0: (10, 100)}, "uwave", "v1", WINDOWS),
        make_job_id({TopicPartition("b", 0): (10, 100), A1: (0, 40)}, "uwave", "v1", WINDOWS),
        make_job_id(bounds, "uwave", "v2", WINDOWS),
        make_job_id(bounds, "uwave", "v1", {**WINDOWS, "hop": 105}),
    ]
    assert job_id not in different and len(set(different)) == len(different)


def _job(status: str = "stopped") -> ReplayJob:
    return ReplayJob(
        job_id="0123456789ab",
        topics=("a",),
        from_ms=T0,
        to_ms=None,
        output_topic="out.backfill",
        dead_letter_topic="dlq.backfill",
        model_name="uwave",
        model_version="v1",
        partitions=(
            PartitionProgress(
                "a", 0, 10, 100, resume_offset=55, emitted_through=60, anchors={"glove-1": T0 + 3}
            ),
            PartitionProgress("a", 1, 0, 40, resume_offset=40),
        ),
        status=status,  # type: ignore[arg-type]
    )


def test_resume_file_round_trips_and_bounds_cover_only_unfinished_partitions(tmp_path) -> None:
    job = _job()
    save_job(job, tmp_path)
    loaded = load_job(job.job_id, tmp_path)
    assert loaded == job
    assert loaded.bounds() == {A0: (55, 100)}
    assert loaded.records_left() == 45
    assert [p.done for p in loaded.partitions] == [False, True]


@pytest.mark.parametrize(
    ("job_id", "prepare", "message"),
    [
        ("../../etc", None, r"expected a 12-hex-digit job id"),
        ("fedcba987654", None, r"no resume file .*; start the replay again with --from"),
        ("0123456789ab", "completed", r"already completed; nothing to resume"),
        ("0123456789ab", "garbage", r"is unreadable .*; start the replay again"),
    ],
)
def test_resume_refuses_unknown_completed_or_broken_jobs(
    tmp_path, job_id, prepare, message
) -> None:
    if prepare == "completed":
        save_job(replace(_job(), status="completed"), tmp_path)
    elif prepare == "garbage":
        (tmp_path / f"{job_id}.json").write_text("{not json")
    with pytest.raises(ReplayError, match=message):
        load_job(job_id, tmp_path)
