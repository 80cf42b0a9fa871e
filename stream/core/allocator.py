"""glibc malloc settings for the worker's poll-sized numpy arrays.

A poll of 2,000 chunk records makes a few arrays of several MB each. Above glibc's
mmap threshold each one is mapped fresh and unmapped when freed, so the next poll
faults the same pages in again: on this VM that cost ~0.8 us per 100-sample binary
record, as much as decoding it (bench.decode_bench --binary-only, 2.88 vs 0.72 us).
Raising the mmap threshold to 32 MiB keeps those arrays on the heap, and a 128 MiB trim
threshold keeps the freed heap for the next poll instead of returning it at once; the
price is up to that much freed memory staying resident. glibc's own environment
variables (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) win: when either is set,
nothing is changed. Other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 128 * 2**20
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_allocator() -> bool:
    """Apply the thresholds above; True if glibc took them."""
    if any(name in os.environ for name in _USER_SETTINGS):
        log.info("malloc thresholds left to the environment")
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc: musl and others have no mallopt
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    log.debug(
        "malloc thresholds mmap=%d trim=%d applied=%s",
        MMAP_THRESHOLD_BYTES,
        TRIM_THRESHOLD_BYTES,
        done,
    )
    return done
