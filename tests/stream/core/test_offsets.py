"""Commit positions: the low watermark, in-flight windows, metadata, never backwards."""

from __future__ import annotations

import numpy as np
from kafka.structs import OffsetAndMetadata, TopicPartition

from stream.core.offsets import NOTHING_EMITTED, CommitMetadata, OffsetTracker
from tests.stream.rows import make_rows

TP = TopicPartition("samples", 0)
TP2 = TopicPartition("samples", 1)


def _tracker() -> tuple[OffsetTracker, int, int]:
    tracker = OffsetTracker()
    return tracker, tracker.assign(TP, None), tracker.assign(TP2, None)


def test_commit_is_the_next_offset_when_nothing_is_needed() -> None:
    tracker, s0, _ = _tracker()
    tracker.consumed(s0, 120)
    positions = tracker.positions({})
    assert positions == {TP: OffsetAndMetadata(120, CommitMetadata(119).encode(), -1)}


def test_commit_stops_at_the_store_low_watermark() -> None:
    tracker, s0, s1 = _tracker()
    tracker.consumed(s0, 120)
    tracker.consumed(s1, 50)
    positions = tracker.positions({s0: 80})
    assert positions[TP].offset == 80
    assert positions[TP2].offset == 50


def test_in_flight_and_waiting_windows_hold_back_the_commit_and_emitted_position() -> None:
    tracker, s0, _ = _tracker()
    tracker.consumed(s0, 500)
    in_flight = make_rows(2, source=s0, first_offset=300)  # first offsets 300, 310; ready 309, 319
    token = tracker.hold(in_flight)
    waiting = make_rows(1, source=s0, first_offset=200)  # first 200, ready 209
    positions = tracker.positions({}, waiting=[waiting])
    assert positions[TP].offset == 200
    assert CommitMetadata.decode(positions[TP].metadata).emitted_through == 208
    positions = tracker.positions({})
    assert positions[TP].offset == 300
    assert CommitMetadata.decode(positions[TP].metadata).emitted_through == 308
    tracker.release(token)
    assert tracker.positions({})[TP].offset == 500


def test_offsets_never_go_backwards() -> None:
    tracker, s0, _ = _tracker()
    tracker.consumed(s0, 100)
    first = tracker.positions({})
    tracker.committed(first)
    # a new device appears whose window needs an older offset than the last commit
    assert tracker.positions({s0: 60})[TP].offset == 100


def test_restart_replay_zone_comes_from_commit_metadata() -> None:
    tracker = OffsetTracker()
    source = tracker.assign(TP, OffsetAndMetadata(40, CommitMetadata(95).encode(), -1))
    assert tracker.skip_through(source) == 95
    mask = tracker.already_emitted(
        np.array([source, source, source], dtype=np.int32), np.array([90, 95, 96], dtype=np.int64)
    )
    assert mask.tolist() == [True, True, False]
    # before replay catches up, the emitted position never drops below what was committed
    tracker.consumed(source, 60)
    assert CommitMetadata.decode(tracker.positions({})[TP].metadata).emitted_through == 95


def test_unknown_or_foreign_metadata_means_nothing_emitted() -> None:
    assert CommitMetadata.decode("").emitted_through == NOTHING_EMITTED
    assert CommitMetadata.decode("written by another tool").emitted_through == NOTHING_EMITTED
    assert CommitMetadata.decode('{"v": 1}').emitted_through == NOTHING_EMITTED


def test_revoked_partitions_are_not_committed() -> None:
    tracker, s0, s1 = _tracker()
    tracker.consumed(s0, 10)
    tracker.consumed(s1, 20)
    tracker.revoke(TP)
    assert set(tracker.positions({})) == {TP2}
