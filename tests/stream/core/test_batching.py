"""The dynamic batcher: full batches leave at once, partial ones after max_wait_ms."""

from __future__ import annotations

import numpy as np

from stream.core.batching import DynamicBatcher
from stream.core.columns import WindowRows
from tests.stream.rows import make_rows


def test_full_batches_leave_without_waiting() -> None:
    batcher = DynamicBatcher(max_batch=4, max_wait_ms=1000)
    batcher.add(make_rows(10, enqueued_at_s=100.0))
    first = batcher.next_batch(now_s=100.0)
    second = batcher.next_batch(now_s=100.0)
    assert first is not None and second is not None
    assert (len(first), len(second)) == (4, 4)
    assert batcher.next_batch(now_s=100.0) is None  # 2 left, not due yet
    assert batcher.pending == 2


def test_partial_batch_leaves_when_the_oldest_window_has_waited_max_wait() -> None:
    batcher = DynamicBatcher(max_batch=8, max_wait_ms=50)
    batcher.add(make_rows(3, enqueued_at_s=10.0))
    assert batcher.deadline_s() == 10.05
    assert batcher.next_batch(now_s=10.049) is None
    batch = batcher.next_batch(now_s=10.05)
    assert batch is not None and len(batch) == 3
    assert batcher.pending == 0 and batcher.deadline_s() is None


def test_batches_keep_arrival_order_across_groups_and_split_groups() -> None:
    batcher = DynamicBatcher(max_batch=3, max_wait_ms=0)
    batcher.add(make_rows(2, device_prefix="a"))
    batcher.add(make_rows(4, device_prefix="b"))
    batches = [batcher.next_batch(now_s=1.0, force=True) for _ in range(2)]
    ids = [d for batch in batches for d in batch.device_ids]
    assert ids == ["a-0", "a-1", "b-0", "b-1", "b-2", "b-3"]
    assert [len(b) for b in batches] == [3, 3]
    np.testing.assert_array_equal(batches[1].data[:, 0, 0], [1.0, 2.0, 3.0])


def test_force_and_drain_empty_the_batcher() -> None:
    batcher = DynamicBatcher(max_batch=4, max_wait_ms=10_000)
    batcher.add(make_rows(9))
    assert batcher.next_batch(now_s=0.0, force=True) is not None
    rest = batcher.drain()
    assert [len(b) for b in rest] == [4, 1]
    assert batcher.pending == 0


def test_rows_take_by_mask_and_concat_round_trip() -> None:
    rows = make_rows(5)
    mask = np.array([True, False, True, False, True])
    picked = rows.take(mask)
    assert picked.device_ids == ["dev-0", "dev-2", "dev-4"]
    joined = WindowRows.concat([picked, rows.take(~mask)])
    assert sorted(joined.device_ids) == sorted(rows.device_ids)
    assert joined.data.shape == rows.data.shape
