"""One device, one table row per event-time policy: windows, counters, reference agrees."""

from __future__ import annotations

import numpy as np
import pytest

from tests.windows.harness import Pair
from windows import WindowConfig


def feed_singles(config: WindowConfig, timestamps: list[int]) -> tuple[Pair, list, dict]:
    """Feed single-sample records (value = timestamp, offset = arrival index) to both."""
    pair = Pair(config)
    for i, t in enumerate(timestamps):
        pair.one("dev", t, np.full(config.channels, t, dtype=np.float32), 0, i)
    batch = pair.assert_same()
    spans = list(zip(batch.start_ts_ms.tolist(), batch.end_ts_ms.tolist(), strict=True))
    return pair, spans, pair.store.counters


POLICY_TABLE = [
    # name, config overrides, timestamps, expected (start, end) windows, expected counters
    ("in_order_sliding", {}, [0, 10, 20, 30], [(0, 20), (10, 30)], {}),
    ("tumbling", {"hop": 3}, [0, 10, 20, 30, 40, 50], [(0, 20), (30, 50)], {}),
    (
        "sampling_hop_beyond_length",
        {"length": 2, "hop": 3},
        list(range(0, 80, 10)),
        [(0, 10), (30, 40), (60, 70)],
        {},
    ),
    ("duplicate_dropped", {}, [0, 10, 10, 20], [(0, 20)], {"duplicates": 1}),
    ("late_dropped_without_reorder", {}, [0, 10, 20, 5, 30], [(0, 20), (10, 30)], {"late": 1}),
    (
        "reordered_inserted_in_place",
        {"reorder_ms": 20},
        [0, 20, 10, 30, 40, 50],
        [(0, 20), (10, 30)],
        {"reordered": 1},
    ),
    (
        "older_than_reorder_window_is_late",
        {"reorder_ms": 20},
        [0, 10, 40, 15, 50, 60, 70],
        [(0, 40), (10, 50)],
        {"late": 1},
    ),
    (
        "duplicate_of_held_sample",
        {"reorder_ms": 20},
        [0, 10, 20, 10, 30, 40],
        [(0, 20)],
        {"duplicates": 1},
    ),
    (
        "gap_resets",
        {"gap_ms": 100},
        [0, 10, 20, 30, 200, 210, 220],
        [(0, 20), (10, 30), (200, 220)],
        {"gaps_reset": 1},
    ),
    (
        "gap_reset_drops_partial_window",
        {"gap_ms": 100, "hop": 3},
        [0, 10, 20, 30, 40, 200],
        [(0, 20)],
        {"gaps_reset": 1},
    ),
    (
        "gap_filled_at_median_interval",
        {"gap_ms": 25, "gap_policy": "fill"},
        [0, 10, 20, 50],
        [(0, 20), (10, 30), (20, 40), (30, 50)],
        {"gaps_filled": 1, "samples_filled": 2},
    ),
    (
        "gap_filled_at_configured_interval",
        {"gap_ms": 25, "gap_policy": "fill", "interval_ms": 15.0, "hop": 2},
        [0, 10, 20, 50],
        [(0, 20), (20, 50)],
        {"gaps_filled": 1, "samples_filled": 1},
    ),
    (
        "gap_too_long_to_fill_resets",
        {"gap_ms": 25, "gap_policy": "fill", "max_fill": 1},
        [0, 10, 20, 50, 60, 70],
        [(0, 20), (50, 70)],
        {"gaps_reset": 1},
    ),
    (
        "gap_without_known_interval_resets",
        {"gap_ms": 25, "gap_policy": "fill"},
        [0, 100, 110, 120],
        [(100, 120)],
        {"gaps_reset": 1},
    ),
]


@pytest.mark.parametrize(
    ("overrides", "timestamps", "windows", "counters"),
    [row[1:] for row in POLICY_TABLE],
    ids=[row[0] for row in POLICY_TABLE],
)
def test_policy_table(overrides, timestamps, windows, counters):
    config = WindowConfig(**{"length": 3, "hop": 1, "channels": 1, **overrides})
    _, spans, got = feed_singles(config, timestamps)
    assert spans == windows
    for name, value in counters.items():
        assert got[name] == value, name
    unexpected = {k: v for k, v in got.items() if v and k not in counters and k != "windows"}
    assert unexpected == {}


def test_fill_interpolates_linearly_and_carries_the_gap_samples_offset():
    config = WindowConfig(length=5, hop=5, channels=2, gap_ms=25, gap_policy="fill")
    pair = Pair(config)
    pair.one("dev", 0, np.array([0.0, 10.0], dtype=np.float32), 3, 100)
    pair.one("dev", 10, np.array([1.0, 10.0], dtype=np.float32), 3, 101)
    pair.one("dev", 40, np.array([4.0, 40.0], dtype=np.float32), 3, 102)
    batch = pair.assert_same()
    np.testing.assert_allclose(batch.data[0], [[0, 10], [1, 10], [2, 20], [3, 30], [4, 40]])
    assert batch.last_offsets.tolist() == [102]
    assert batch.first_offsets.tolist() == [100]


def test_reorder_waits_for_newest_to_pass_window_end_and_reports_that_sample():
    config = WindowConfig(length=2, hop=2, channels=1, reorder_ms=25)
    pair = Pair(config)
    for offset, t in enumerate([0, 10, 20, 30, 40]):
        pair.one("dev", t, np.zeros(1, dtype=np.float32), 0, offset)
    batch = pair.assert_same()
    # Window [0, 10] is ready when a sample at >= 35 arrives: the one at 40, offset 4.
    assert batch.end_ts_ms.tolist() == [10]
    assert batch.ready_offsets.tolist() == [4]
    assert batch.last_offsets.tolist() == [1]


def test_ready_offsets_equal_last_offsets_without_reorder():
    config = WindowConfig(length=4, hop=2, channels=1)
    pair = Pair(config)
    pair.chunk("dev", list(range(0, 200, 10)), np.zeros((20, 1), dtype=np.float32), 0, 7)
    for offset, t in enumerate(range(200, 300, 10), start=8):
        pair.one("dev", t, np.zeros(1, dtype=np.float32), 0, offset)
    pair.assert_same()
    batch = Pair(config)
    store = batch.store
    store.append_bulk(
        ["a", "b"] * 10,
        np.repeat(np.arange(10) * 10, 2),
        np.zeros((20, 1)),
        np.zeros(20, dtype=np.int32),
        np.arange(20),
    )
    out = store.ready_windows()
    assert out.ready_offsets.tolist() == out.last_offsets.tolist()
    assert out.ready_offsets.tolist() == sorted(out.ready_offsets.tolist())


def test_low_watermark_is_first_offset_of_the_unfinished_window():
    config = WindowConfig(length=3, hop=3, channels=1)
    pair = Pair(config)
    marks = []
    for offset, t in enumerate(range(0, 50, 10), start=100):
        pair.one("dev", t, np.zeros(1, dtype=np.float32), 5, offset)
        pair.assert_same()
        marks.append(pair.store.low_watermarks())
    assert marks == [{5: 100}, {5: 100}, {}, {5: 103}, {5: 103}]


def test_device_moving_to_another_source_restarts_there():
    config = WindowConfig(length=3, hop=1, channels=1)
    pair = Pair(config)
    for offset, t in enumerate([0, 10]):
        pair.one("dev", t, np.zeros(1, dtype=np.float32), 0, offset)
    pair.one("dev", 20, np.zeros(1, dtype=np.float32), 1, 50)
    pair.assert_same()
    assert pair.store.counters["source_moves"] == 1
    assert pair.store.low_watermarks() == {1: 50}
    assert pair.store.drop_sources([0]) == 0
    assert pair.store.drop_sources([1]) == 1
