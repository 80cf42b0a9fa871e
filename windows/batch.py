"""WindowBatch: the columnar result of WindowStore.ready_windows()."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowBatch:
    """W ready windows, columnar; every array is owned by the caller (copies, not views)."""

    device_ids: list[str]
    data: np.ndarray  # float32 [W, L, C]
    start_ts_ms: np.ndarray  # int64 [W], first sample timestamp
    end_ts_ms: np.ndarray  # int64 [W], last sample timestamp
    first_sources: np.ndarray  # int32 [W]
    first_offsets: np.ndarray  # int64 [W]
    last_sources: np.ndarray  # int32 [W]
    last_offsets: np.ndarray  # int64 [W]
    ready_offsets: np.ndarray  # int64 [W], offset of the sample that made the window ready
    # int64 [W]: timestamp of the window's sample at index min(hop, length) - 1, the last
    # sample before the device's next window starts; a worker that resumes the device
    # after a restart drops its replayed samples up to here so the windows keep their phase
    anchor_ts_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.device_ids)

    @classmethod
    def empty(cls, length: int, channels: int) -> WindowBatch:
        """A batch of zero windows with the right shapes."""
        i64 = np.zeros(0, dtype=np.int64)
        i32 = np.zeros(0, dtype=np.int32)
        return cls(
            [],
            np.zeros((0, length, channels), dtype=np.float32),
            i64,
            i64.copy(),
            i32,
            i64.copy(),
            i32.copy(),
            i64.copy(),
            i64.copy(),
            i64.copy(),
        )

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> WindowBatch:
        """A batch from rows (device_id, data [L, C], start_ts, end_ts, source, first_offset,
        last_offset, ready_offset, anchor_ts): the cheap form single windows are queued in."""
        ids, data, start, end, source, first, last, ready, anchor = zip(*rows, strict=True)
        sources = np.array(source, dtype=np.int32)
        return cls(
            list(ids),
            np.stack(data),
            np.array(start, dtype=np.int64),
            np.array(end, dtype=np.int64),
            sources,
            np.array(first, dtype=np.int64),
            sources.copy(),
            np.array(last, dtype=np.int64),
            np.array(ready, dtype=np.int64),
            np.array(anchor, dtype=np.int64),
        )

    @classmethod
    def concat(cls, parts: list[WindowBatch]) -> WindowBatch:
        """One batch holding the windows of parts, in order."""
        if len(parts) == 1:
            return parts[0]
        ids: list[str] = []
        for part in parts:
            ids.extend(part.device_ids)

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return cls(
            ids,
            cat("data"),
            cat("start_ts_ms"),
            cat("end_ts_ms"),
            cat("first_sources"),
            cat("first_offsets"),
            cat("last_sources"),
            cat("last_offsets"),
            cat("ready_offsets"),
            cat("anchor_ts_ms"),
        )
