"""100,000 devices of 3 channels with L = 315: memory stays within the configured bound."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import numpy as np

from windows import WindowConfig, WindowStore

DEVICES = 100_000
POLL = 5_000
#: Python-side bookkeeping per device the arena does not count: its id string in the
#: slot map and the slot lists (generous; measured ~110 bytes).
ID_BYTES_PER_DEVICE = 400
#: Temporaries of one 5,000-sample call.
CALL_BYTES = 8 * 2**20


def feed(store: WindowStore, ids: list[str], t: int) -> None:
    """One sample for every device in ids, in polls of POLL records."""
    for lo in range(0, len(ids), POLL):
        part = ids[lo : lo + POLL]
        n = len(part)
        store.append_bulk(
            part,
            np.full(n, t, dtype=np.int64),
            np.ones((n, 3), dtype=np.float32),
            (np.arange(n) % 16).astype(np.int32),
            np.full(n, t, dtype=np.int64),
        )


def rss_bytes() -> int:
    """This process's resident set size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_hundred_thousand_devices_stay_within_the_configured_bound():
    config = WindowConfig(length=315, hop=315, channels=3, max_devices=DEVICES)
    bound = config.max_devices * (config.bytes_per_device + ID_BYTES_PER_DEVICE) + CALL_BYTES
    first = [f"sensor-{i:06d}" for i in range(DEVICES)]
    more = [f"late-{i:06d}" for i in range(DEVICES // 4)]
    gc.collect()
    rss_base = rss_bytes()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        store = WindowStore(config)
        for t in range(3):
            feed(store, first, t * 10)
        full, _ = tracemalloc.get_traced_memory()
        rss_full = rss_bytes()
        assert store.active_devices == DEVICES
        feed(store, more, 100)  # new devices: least recently updated ones make room
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.memory_bytes() == config.max_devices * config.bytes_per_device
    # the sample rings live on their own mappings (not traced): resident size covers them
    assert rss_full - rss_base <= bound + CALL_BYTES  # tracing itself costs a little too
    assert full - base <= bound
    assert peak - base <= bound
    assert store.active_devices == DEVICES
    assert store.counters["evicted_lru"] == len(more)
    assert after - full <= CALL_BYTES  # evictions keep it flat
