"""Resident memory of the worker's window state for N active devices, in a fresh process.

The store is the one the worker builds from the default config (make_window_store,
max_devices 100,000), filled with L - 1 samples per device: every device holds the
most a device can hold without emitting a window. RSS (VmRSS) is read after the
imports and the store's construction, and again after filling, with the inputs
freed; the difference over N is the cost of one active device. Prints one JSON object.

Before each reading the probe calls glibc's ``malloc_trim(0)``: the fill's temporaries
(a block of 314,000 samples at a time) are freed into the C heap and would otherwise
stay resident, inflating small N. Trimming returns only free heap pages to the
system; every page the store holds (its arrays, device ids, dict) stays counted.

    python -m bench.memory_probe --devices 10000
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import sys
from pathlib import Path

import numpy as np
import orjson

from stream.config.loading import load_config
from stream.core.window_bridge import make_window_store

BLOCK_DEVICES = 1000
WARM_DEVICES = 16
CHANNELS = 3


def rss_bytes() -> int:
    """This process's resident set size, after handing free C-heap pages back (glibc only)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
        if trim is not None:
            trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def fill(store: object, devices: int, samples: int, prefix: str = "dev") -> None:
    """Append `samples` samples to each of `devices` devices, BLOCK_DEVICES at a time."""
    rng = np.random.default_rng(0)
    for first in range(0, devices, BLOCK_DEVICES):
        count = min(BLOCK_DEVICES, devices - first)
        names = [f"{prefix}-{d:06d}" for d in range(first, first + count)]
        ids = np.repeat(np.asarray(names, dtype=object), samples).tolist()  # [n * s]
        ts = np.tile(1_732_280_000_000 + 10 * np.arange(samples, dtype=np.int64), count)
        values = rng.standard_normal((count * samples, CHANNELS)).astype(np.float32)
        sources = np.zeros(count * samples, dtype=np.int32)
        offsets = np.arange(count * samples, dtype=np.int64)
        store.append_bulk(ids, ts, values, sources, offsets, now_ms=1_732_280_000_000)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    """Measure and print {devices, rss_before, rss_after, bytes_per_device, ...}."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory_probe")
    parser.add_argument("--devices", type=int, required=True)
    args = parser.parse_args(argv)
    config = load_config(None, [], environ={})
    store = make_window_store(config.windows, CHANNELS)
    # a few throwaway devices first (ids distinct from the measured ones): allocator pools,
    # lazily built helpers and library code paged in on first use are not per device
    fill(store, WARM_DEVICES, config.windows.length - 1, prefix="warm")
    held_before = store.active_devices
    before = rss_bytes()
    fill(store, args.devices, config.windows.length - 1)
    after = rss_bytes()
    payload = config.windows.length * CHANNELS * 4
    sys.stdout.write(
        orjson.dumps(
            {
                "devices": args.devices,
                "active_devices": store.active_devices,
                "rss_before": before,
                "rss_after": after,
                # devices the fill added (at max_devices, LRU reuses the warm devices' slots)
                "bytes_per_device": (after - before) / (store.active_devices - held_before),
                "payload_bytes": payload,
                "reserved_bytes": store.memory_bytes(),
            }
        ).decode()
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
