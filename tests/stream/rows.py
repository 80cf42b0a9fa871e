"""Factories of WindowRows for stream unit tests."""

from __future__ import annotations

import numpy as np

from stream.core.columns import WindowRows


def make_rows(
    count: int,
    *,
    source: int = 0,
    first_offset: int = 0,
    enqueued_at_s: float = 0.0,
    length: int = 4,
    channels: int = 3,
    device_prefix: str = "dev",
) -> WindowRows:
    """`count` windows of one source with increasing offsets, each tagged by its index."""
    index = np.arange(count, dtype=np.int64)
    data = np.repeat(index.astype(np.float32), length * channels).reshape(count, length, channels)
    return WindowRows(
        device_ids=[f"{device_prefix}-{i}" for i in range(count)],
        data=data,
        start_ts_ms=index * 1000,
        end_ts_ms=index * 1000 + 999,
        anchor_ts_ms=index * 1000 + 999,
        sources=np.full(count, source, dtype=np.int32),
        first_offsets=first_offset + index * 10,
        last_offsets=first_offset + index * 10 + 9,
        ready_offsets=first_offset + index * 10 + 9,
        ready_record_ts_ms=index * 1000 + 999,
        enqueued_at_s=np.full(count, enqueued_at_s),
    )
