"""Resuming devices at their anchors after a restart."""

from __future__ import annotations

import numpy as np

from stream.core.recovery import ResumeFilter, latest_anchor_per_device
from tests.stream.rows import make_rows


def test_samples_up_to_the_anchor_are_dropped_then_the_device_streams_normally() -> None:
    resume = ResumeFilter(skip_after_anchor=0)
    resume.add(0, {"a": 1000})
    ids = ["a", "b", "a", "a", "a"]
    ts = np.array([990, 5, 1000, 1010, 1020], dtype=np.int64)
    assert resume.keep_mask(ids, ts).tolist() == [False, True, False, True, True]
    assert resume.resuming == 0
    assert resume.keep_mask(ids, ts) is None  # fast path once every device has resumed


def test_sampling_windows_also_skip_the_gap_samples_after_the_anchor() -> None:
    resume = ResumeFilter(skip_after_anchor=2)  # hop - length = 2
    resume.add(0, {"a": 100})
    ts = np.array([90, 110, 120, 130, 140], dtype=np.int64)
    assert resume.keep_mask(["a"] * 5, ts).tolist() == [False, False, False, True, True]


def test_dropping_a_source_forgets_its_devices() -> None:
    resume = ResumeFilter(skip_after_anchor=0)
    resume.add(0, {"a": 100})
    resume.add(1, {"b": 100})
    resume.drop_sources([0])
    ts = np.array([50, 50], dtype=np.int64)
    assert resume.keep_mask(["a", "b"], ts).tolist() == [True, False]


def test_anchor_per_device_is_the_latest_window_of_that_device() -> None:
    rows = make_rows(3)
    rows = rows.take(np.array([0, 1, 2]))
    object.__setattr__(rows, "device_ids", ["a", "b", "a"])
    assert latest_anchor_per_device(rows) == {(0, "a"): 2999, (0, "b"): 1999}
