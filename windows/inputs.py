"""Checking what callers hand the window store, and cutting samples into runs.

The store takes whole polls as arrays; these turn them into the dtypes it works in
and refuse mismatched shapes with one message that names every length.
"""

from __future__ import annotations

import numpy as np

from windows.errors import WindowError


def check_runs(r, run_lengths, sources, offsets):
    """Run arrays as int64 lengths, int32 sources, int64 offsets, each [R]; WindowError if not."""
    lengths = np.asarray(run_lengths, dtype=np.int64)
    src = np.asarray(sources, dtype=np.int32)
    off = np.asarray(offsets, dtype=np.int64)
    if not lengths.shape == src.shape == off.shape == (r,):
        raise WindowError(
            f"device_ids, run_lengths, sources and offsets must be [R] with one R; got "
            f"{r}, {list(lengths.shape)}, {list(src.shape)}, {list(off.shape)}"
        )
    if r and lengths.min() < 1:
        raise WindowError("run_lengths must be >= 1; leave empty records out of the call")
    return lengths, src, off


def check_samples(channels, n, timestamps_ms, values, sources, offsets):
    """Per-sample arrays as int64, float32 [N, C], int32, int64 of length n; or WindowError."""
    ts = np.asarray(timestamps_ms, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float32)
    src = np.asarray(sources, dtype=np.int32)
    off = np.asarray(offsets, dtype=np.int64)
    c = channels
    if vals.ndim != 2 or vals.shape[1] != c:
        raise WindowError(f"values must have shape [N, {c}], got {list(vals.shape)}")
    if not len(ts) == len(vals) == len(src) == len(off) == n:
        raise WindowError(
            f"device_ids, timestamps, values, sources and offsets must have one length; "
            f"got {n}, {len(ts)}, {len(vals)}, {len(src)}, {len(off)}"
        )
    return ts, vals, src, off


def increasing(positions: np.ndarray) -> bool:
    """True if positions strictly increase (windows already in the order they became ready)."""
    return len(positions) < 2 or bool((positions[1:] > positions[:-1]).all())


def runs_of_samples(
    slots: np.ndarray, src: np.ndarray, off: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Maximal stretches of one device, source and offset: (slots, lengths, first, src, off)."""
    n = len(slots)
    change = (slots[1:] != slots[:-1]) | (src[1:] != src[:-1]) | (off[1:] != off[:-1])
    first = np.flatnonzero(np.concatenate(([True], change)))
    lengths = np.diff(first, append=n)
    return slots[first], lengths, first, src[first], off[first]
