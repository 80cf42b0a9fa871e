"""`sensorstream replay` on a real broker with the shipped model, run as the CLI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from stream.jobs.demo import DeviceStreams
from stream.jobs.replay.ranges import format_ms
from tests.integration.workers import REPO, EventReader, Topics, worker_overrides
from tests.kafka_helpers import consume_all

pytestmark = pytest.mark.integration

# Recent Kafka timestamps: the broker's time retention (7 days by default) deletes older records.
BLOCK_A_MS = (int(time.time()) // 60 - 180) * 60_000
BLOCK_B_MS = BLOCK_A_MS + 3_600_000  # an hour later: the range replayed
SUMMARY = re.compile(r"^replay ([0-9a-f]{12}): (completed|stopped)$", re.MULTILINE)


def _produce_stream(
    bootstrap: str, topic: str, streams: DeviceStreams, extra: list[tuple[bytes, bytes, int]] = ()
) -> None:
    """Every chunk of `streams` with its Kafka timestamp = its first sample's ts, then `extra`."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for step in streams.steps():
            for key, value, _ in step:
                producer.send(topic, key=key, value=value, timestamp_ms=orjson.loads(value)["ts"])
        for key, value, timestamp_ms in extra:
            producer.send(topic, key=key, value=value, timestamp_ms=timestamp_ms)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)


def _cli(overrides: list[str], *args: str) -> list[str]:
    command = [sys.executable, "-m", "stream.cli", "replay"]
    for item in overrides:
        command += ["--set", item]
    return command + list(args)


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORSTREAM__")}
    return env | {"XDG_CACHE_HOME": str(cache)}


def _replay(overrides: list[str], cache: Path, *args: str) -> tuple[str, str]:
    """Run the CLI to its end; returns (job id, stdout) after checking it completed."""
    done = subprocess.run(
        _cli(overrides, *args),
        cwd=REPO,
        env=_env(cache),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    job_id, status = SUMMARY.search(done.stdout).groups()
    assert status == "completed", done.stdout
    return job_id, done.stdout


def _committed(bootstrap: str, group: str, tps: list[TopicPartition]) -> dict:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {tp: consumer.committed(tp, metadata=True) for tp in tps}
    finally:
        consumer.close()


def _events(bootstrap: str, topic: str, expected: int) -> list[dict]:
    """The topic's events, waiting a little past `expected` for any extra one."""
    return [orjson.loads(r.value) for r in consume_all(bootstrap, topic, expected + 1, timeout_s=2)]


def _without_emitted_at(event: dict) -> dict:
    return {k: v for k, v in event.items() if k != "emitted_at"}


def test_replay_of_a_time_range_emits_exactly_its_windows_and_the_same_events_twice(
    kafka_bootstrap, new_topic, shipped_predictor, uwave_test, tmp_path
) -> None:
    topics = Topics.fresh(new_topic, partitions=2)
    block_a = DeviceStreams(uwave_test.x[:12], devices=4, start_ms=BLOCK_A_MS)
    block_b = DeviceStreams(uwave_test.x[12:36], devices=4, start_ms=BLOCK_B_MS)
    bad = (b"glove-001", b'{"device_id": "glove-001"}', BLOCK_B_MS + 500)
    bad_a = (b"glove-002", b"not json", BLOCK_A_MS + 500)
    _produce_stream(kafka_bootstrap, topics.input, block_a, [bad_a])
    _produce_stream(kafka_bootstrap, topics.input, block_b, [bad])
    tps = [TopicPartition(topics.input, p) for p in (0, 1)]
    live = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=topics.group, enable_auto_commit=False
    )
    live.commit({tp: OffsetAndMetadata(7, "live-worker", -1) for tp in tps})
    live.close()
    before = _committed(kafka_bootstrap, topics.group, tps)

    overrides = worker_overrides(kafka_bootstrap, topics)
    window = ("--from", format_ms(BLOCK_B_MS), "--to", str(BLOCK_B_MS + 3_600_000))
    job_id, stdout = _replay(overrides, tmp_path, *window)
    assert "dead letters  1 " in stdout and "missing_field 1" in stdout
    output = topics.output + ".backfill"
    first = _events(kafka_bootstrap, output, len(block_b.expected()))
    again_id, _ = _replay(overrides, tmp_path, *window)

    expected = block_b.expected()
    assert len(first) == len(expected)
    assert {(e["device_id"], e["window_start_ts"]) for e in first} == set(expected)
    assert all(e["replay"] is True and e["job_id"] == job_id for e in first)
    cases = [expected[(e["device_id"], e["window_start_ts"])] for e in first]
    offline = shipped_predictor.predict_batch(block_b.x[cases])
    np.testing.assert_allclose([e["probabilities"] for e in first], offline, atol=1e-5)

    assert again_id == job_id
    both = _events(kafka_bootstrap, output, 2 * len(expected))
    assert len(both) == 2 * len(expected)
    by_id: dict[str, list[dict]] = {}
    for event in both:
        by_id.setdefault(event["event_id"], []).append(_without_emitted_at(event))
    assert len(by_id) == len(expected)
    assert all(len(pair) == 2 and pair[0] == pair[1] for pair in by_id.values())

    dead = consume_all(kafka_bootstrap, topics.dead_letters + ".backfill", 3, timeout_s=2)
    assert [(r.key, r.value) for r in dead] == [bad[:2], bad[:2]]
    assert _committed(kafka_bootstrap, topics.group, tps) == before
    assert all(meta.offset == 7 and meta.metadata == "live-worker" for meta in before.values())
    changelog = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    assert f"{topics.group}-window-anchors" not in changelog.topics()
    changelog.close()


def test_bad_arguments_stop_with_one_line_and_exit_2(kafka_bootstrap, new_topic, tmp_path) -> None:
    topics = Topics.fresh(new_topic, partitions=1)
    streams = DeviceStreams(np.zeros((2, 315, 3), dtype=np.float32), devices=1, start_ms=BLOCK_A_MS)
    _produce_stream(kafka_bootstrap, topics.input, streams)
    overrides = worker_overrides(kafka_bootstrap, topics)
    cases = [
        (
            ("--from", "2024-11-14T23:00:00Z", "--to", "2024-11-14T22:00:00+00:00"),
            r"--to 2024-11-14T22:00:00.000Z is not after --from 2024-11-14T23:00:00.000Z; "
            r"pass a --to later",
        ),
        (
            ("--from", "yesterday"),
            r"--from 'yesterday': expected earliest, epoch milliseconds .* ISO-8601 with an offset",
        ),
        (("--from", "2023-11-14T22:00:00"), r"--from '2023-11-14T22:00:00': expected earliest"),
        (
            ("--from", "earliest", "--topics", f"{topics.input}-missing"),
            rf"--topics: unknown topic '{re.escape(topics.input)}-missing'; existing topics: ",
        ),
        (
            ("--from", str(BLOCK_A_MS + 86_400_000)),
            r"--from .* is after the newest retained record; pass an earlier time",
        ),
        (("--to", "now"), r"--from is required"),
        (
            ("--resume", "0123456789ab"),
            r"--resume 0123456789ab: no resume file .*; start the replay again with --from",
        ),
        (
            ("--resume", "0123456789ab", "--from", "earliest"),
            r"--resume continues the stored range and topics; drop --from",
        ),
    ]
    running = [  # all at once: each is a short CLI start-up
        subprocess.Popen(
            _cli(overrides, *args),
            cwd=REPO,
            env=_env(tmp_path),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args, _ in cases
    ]
    for process, (args, message) in zip(running, cases, strict=True):
        stdout, stderr = process.communicate(timeout=60)
        errors = [
            line for line in stderr.splitlines() if line.startswith("sensorstream replay: error: ")
        ]
        assert process.returncode == 2, (args, stderr[-2000:])
        assert len(errors) == 1 and re.search(message, errors[0]), (args, stderr[-2000:])
        assert stdout == ""


def test_sigint_stops_cleanly_and_resume_finishes_the_range(
    kafka_bootstrap, new_topic, uwave_test, tmp_path
) -> None:
    topics = Topics.fresh(new_topic, partitions=2)
    streams = DeviceStreams(uwave_test.x[:160], devices=8, start_ms=BLOCK_A_MS)
    _produce_stream(kafka_bootstrap, topics.input, streams)
    overrides = worker_overrides(
        kafka_bootstrap, topics, "batching.max_batch=2", "batching.max_pending_windows=8"
    )
    output = topics.output + ".backfill"
    reader = EventReader(kafka_bootstrap, output)
    process = subprocess.Popen(
        _cli(overrides, "--from", "1000"),
        cwd=REPO,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(reader.records) < 20 and time.monotonic() < deadline and process.poll() is None:
            reader.read(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr[-3000:]
    assert "is before the oldest retained record of 2 of 2 partitions" in stderr
    job_id, status = SUMMARY.search(stdout).groups()
    assert status == "stopped", stdout
    resume_line = next(
        line for line in stdout.splitlines() if line.strip().startswith("resume with")
    )
    assert resume_line.endswith(f"--resume {job_id}")
    assert re.search(rf"stopped at .*{re.escape(topics.input)}\[0\] ", stdout)
    state = orjson.loads((tmp_path / "sensorstream" / "replay" / f"{job_id}.json").read_bytes())
    assert state["status"] == "stopped"
    stopped_events = len(reader.wait_for(len(streams.expected()), timeout_s=2))
    assert 20 <= stopped_events < len(streams.expected())

    resumed_id, _ = _replay(overrides, tmp_path, "--resume", job_id)
    assert resumed_id == job_id
    events = reader.wait_for(len(streams.expected()) + 1, timeout_s=10)
    reader.close()
    keys = Counter((e["device_id"], e["window_start_ts"]) for e in events)
    assert set(keys) == set(streams.expected())
    by_id: dict[str, dict] = {}
    for event in events:  # duplicates across the stop are allowed only as identical events
        content = _without_emitted_at(event)
        assert by_id.setdefault(event["event_id"], content) == content
    assert len(by_id) == len(streams.expected())
    state_file = tmp_path / "sensorstream" / "replay" / f"{job_id}.json"
    assert orjson.loads(state_file.read_bytes())["status"] == "completed"
