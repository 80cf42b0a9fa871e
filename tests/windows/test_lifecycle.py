"""Eviction, rebalance drops, input checks and configuration checks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.windows.harness import Pair
from windows import WindowConfig, WindowError, WindowStore


def sample(target, device_id, t, source=0, offset=0, now_ms=None):
    """One single-channel sample to a Pair (.one) or a WindowStore (.append_one)."""
    append = target.one if isinstance(target, Pair) else target.append_one
    append(device_id, t, np.zeros(1, dtype=np.float32), source, offset, now_ms)


def test_idle_devices_are_evicted_by_event_time_and_counted():
    pair = Pair(WindowConfig(length=3, hop=1, channels=1, idle_ms=100))
    sample(pair, "a", 0)
    sample(pair, "b", 500)
    assert pair.evict_idle(550) == 1
    pair.assert_same()
    assert pair.store.counters["evicted_idle"] == 1
    assert pair.store.active_devices == 1


def test_idle_eviction_uses_now_ms_of_the_call_when_given():
    pair = Pair(WindowConfig(length=3, hop=1, channels=1, idle_ms=100))
    sample(pair, "a", 0, now_ms=10_000)
    assert pair.store.evict_idle(10_050) == 0
    assert pair.store.evict_idle(10_101) == 1


def test_least_recently_updated_device_makes_room():
    pair = Pair(WindowConfig(length=3, hop=1, channels=1, max_devices=2))
    sample(pair, "a", 0)
    sample(pair, "b", 0)
    sample(pair, "a", 10)
    sample(pair, "c", 0)
    pair.assert_same()
    assert sorted(pair.store._arena.slot_of) == ["a", "c"]
    assert pair.store.counters["evicted_lru"] == 1


def test_one_call_with_more_devices_than_max_devices_is_refused():
    store = WindowStore(WindowConfig(length=3, hop=1, channels=1, max_devices=2))
    with pytest.raises(WindowError, match="max_devices"):
        store.append_bulk(
            ["a", "b", "c"],
            np.zeros(3, dtype=np.int64),
            np.zeros((3, 1)),
            np.zeros(3, dtype=np.int32),
            np.zeros(3, dtype=np.int64),
        )


def test_drop_sources_forgets_exactly_the_devices_of_those_sources():
    pair = Pair(WindowConfig(length=3, hop=1, channels=1))
    for i in range(30):
        sample(pair, f"d{i}", 0, source=i % 3, offset=i)
    assert pair.drop_sources([1, 2]) == 20
    pair.assert_same()
    assert pair.store.low_watermarks() == {0: 0}
    assert pair.store.counters["dropped_rebalance"] == 20


def test_freed_slots_are_reused_for_new_devices():
    store = WindowStore(WindowConfig(length=3, hop=1, channels=1, max_devices=4, idle_ms=1))
    for round_ in range(5):
        for i in range(4):
            sample(store, f"r{round_}-{i}", round_ * 100)
        store.evict_idle(round_ * 100 + 50)
    assert store.active_devices == 0
    assert store.counters["evicted_idle"] == 20


@pytest.mark.parametrize(
    ("values", "n_ids", "message"),
    [
        (np.zeros((2, 2)), 2, r"shape \[N, 1\]"),
        (np.zeros(2), 2, r"shape \[N, 1\]"),
        (np.zeros((2, 1)), 3, "one length"),
    ],
)
def test_malformed_calls_raise_window_error(values, n_ids, message):
    store = WindowStore(WindowConfig(length=3, hop=1, channels=1))
    with pytest.raises(WindowError, match=message):
        store.append_bulk(
            ["a"] * n_ids,
            np.zeros(2, dtype=np.int64),
            values,
            np.zeros(2, dtype=np.int32),
            np.zeros(2, dtype=np.int64),
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"length": 0}, "length"),
        ({"hop": 0}, "hop"),
        ({"channels": 0}, "channels"),
        ({"reorder_ms": -1}, "reorder_ms"),
        ({"reorder_ms": 2000}, "gap_ms"),
        ({"gap_policy": "ignore"}, "gap_policy"),
        ({"max_fill": 5000}, "max_fill"),
        ({"interval_ms": 0.0}, "interval_ms"),
        ({"slack": 4}, "slack"),
        ({"max_devices": 0}, "max_devices"),
        ({"max_devices": 10**12}, "max_devices=1000000000000 must be <= 100000000"),
        ({"hop": 10**23}, "hop=100000000000000000000000 must be <= 2147483647"),
        ({"length": 10**7}, "length=10000000 must be <= 1000000"),
        ({"idle_ms": 10**13}, "idle_ms"),
        ({"interval_ms": float("inf")}, "interval_ms"),
        ({"interval_ms": float("nan")}, "interval_ms"),
    ],
)
def test_invalid_configuration_names_the_field_to_fix(overrides, message):
    with pytest.raises(WindowError, match=message):
        WindowConfig(**{"length": 3, "hop": 1, "channels": 1, **overrides})


@pytest.mark.parametrize(
    ("overrides", "per_device"),
    [
        # compact (in order): 315 x 3 float32 values, 4 window slots x 4 int64,
        # 8 int64 + int32 + bool
        ({}, 315 * 3 * 4 + 4 * 32 + 69),
        # fill at the median interval also keeps the last 17 timestamps
        ({"gap_policy": "fill"}, 315 * 3 * 4 + 4 * 32 + 17 * 8 + 69),
        # reorder_ms > 0: every sample of the 315 + 128 ring keeps float32 values, ts and offset
        ({"reorder_ms": 50}, (315 + 128) * (4 * 3 + 16) + 77),
    ],
)
def test_memory_is_reserved_up_front_at_the_configured_bound(overrides, per_device):
    config = WindowConfig(length=315, hop=100, channels=3, max_devices=1000, **overrides)
    store = WindowStore(config)
    assert store.bytes_per_device() == per_device
    assert store.memory_bytes() == config.max_devices * per_device
