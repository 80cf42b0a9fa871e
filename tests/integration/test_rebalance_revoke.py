"""A revocation is bounded: waiting windows are handed to the next owner, not classified in it."""

from __future__ import annotations

import threading
import time

import pytest

from stream.jobs.demo import DeviceStreams
from stream.service import build_worker
from tests.integration.workers import EventReader, Topics, make_config, produce_device_streams

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000


def test_revoke_classifies_no_waiting_window_and_the_next_owner_emits_them(
    kafka_bootstrap, new_topic, shipped_predictor, uwave_test, record_property
) -> None:
    topics = Topics.fresh(new_topic, partitions=2)
    streams = DeviceStreams(uwave_test.x, devices=12, start_ms=START_MS)
    produce_device_streams(kafka_bootstrap, topics.input, streams)
    # every window waits for a batch that never fills: only a forced flush sends them
    config = make_config(
        kafka_bootstrap,
        topics,
        "batching.max_batch=512",
        "batching.max_wait_ms=60000",  # the bound: a minute is longer than this test
        "batching.max_pending_windows=1024",
    )
    expected = set(streams.expected())
    first = build_worker(config, predictor=shipped_predictor)
    first.open()
    revokes: list[tuple[int, int, float]] = []  # (waiting, emitted inside, seconds)
    revoke = first.checkpoint.partitions.revoked

    def timed_revoke(revoked: list) -> None:
        waiting, emitted, started = first.batcher.pending, first.stats.windows, time.monotonic()
        revoke(revoked)
        if revoked:  # the first join revokes nothing
            took_s = time.monotonic() - started
            revokes.append((waiting, first.stats.windows - emitted, took_s))

    first.checkpoint.partitions.revoked = timed_revoke
    threads = [threading.Thread(target=first.run, daemon=True)]
    threads[0].start()
    deadline = time.monotonic() + 60
    while first.batcher.pending < len(expected):
        assert time.monotonic() < deadline, f"only {first.batcher.pending} windows waiting"
        time.sleep(0.1)
    second = build_worker(config, predictor=shipped_predictor)
    threads.append(threading.Thread(target=second.run, daemon=True))
    threads[1].start()
    deadline = time.monotonic() + 60
    while not (second.offsets.assigned_sources and revokes):
        assert time.monotonic() < deadline, "the second worker got no partition"
        time.sleep(0.1)
    time.sleep(2)  # both read their partitions back to the waiting windows
    for worker, thread in zip((first, second), threads, strict=True):
        worker.request_stop()  # the drain classifies what waits
        thread.join(60)
    events = EventReader(kafka_bootstrap, topics.output).wait_for(len(expected), timeout_s=60)

    waiting, emitted_inside, seconds = max(revokes)  # the one the second worker caused
    record_property("revoke_s", round(seconds, 3))
    assert waiting == len(expected)
    assert emitted_inside == 0
    assert expected - {(e["device_id"], e["window_start_ts"]) for e in events} == set()
