"""Columnar window rows: slicing and concatenation over every column at once.

The batcher and the offset tracker move windows around in groups; keeping each
group columnar (one array per field) means a batch of 64 windows costs a handful
of numpy calls, not 64 Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class WindowRows:
    """W windows on their way from the window store to the producer."""

    device_ids: list[str]
    data: npt.NDArray[np.float32]  # [W, L, C] raw values (the predictor normalizes)
    start_ts_ms: npt.NDArray[np.int64]  # [W] first sample timestamp
    end_ts_ms: npt.NDArray[np.int64]  # [W] last sample timestamp
    anchor_ts_ms: npt.NDArray[np.int64]  # [W] where the device's next window resumes (recovery)
    sources: npt.NDArray[np.int32]  # [W] the worker's id of the topic-partition
    first_offsets: npt.NDArray[np.int64]  # [W]
    last_offsets: npt.NDArray[np.int64]  # [W]
    ready_offsets: npt.NDArray[np.int64]  # [W] offset of the record that completed the window
    ready_record_ts_ms: npt.NDArray[np.int64]  # [W] Kafka timestamp of that record (latency origin)
    enqueued_at_s: npt.NDArray[np.float64]  # [W] monotonic time the window became ready

    def __len__(self) -> int:
        return len(self.device_ids)

    @staticmethod
    def empty(length: int, channels: int) -> WindowRows:
        """No windows, with the right shapes (a batch made only of side requests)."""
        i64 = np.zeros(0, dtype=np.int64)
        return WindowRows(
            [],
            np.zeros((0, length, channels), dtype=np.float32),
            i64,
            i64,
            i64,
            np.zeros(0, dtype=np.int32),
            i64,
            i64,
            i64,
            i64,
            np.zeros(0, dtype=np.float64),
        )

    def take(self, index: Any) -> WindowRows:
        """Rows selected by a slice, a boolean mask or an index array."""
        changes: dict[str, Any] = {}
        for field in fields(self):
            column = getattr(self, field.name)
            if isinstance(column, np.ndarray):
                changes[field.name] = column[index]
            elif isinstance(index, slice):
                changes[field.name] = column[index]
            else:
                picked = np.arange(len(column))[index]
                changes[field.name] = [column[i] for i in picked.tolist()]
        return replace(self, **changes)

    @staticmethod
    def concat(parts: list[WindowRows]) -> WindowRows:
        """One group holding the rows of every part, in order."""
        if len(parts) == 1:
            return parts[0]
        columns: dict[str, Any] = {}
        for field in fields(WindowRows):
            values = [getattr(part, field.name) for part in parts]
            if isinstance(values[0], np.ndarray):
                columns[field.name] = np.concatenate(values)
            else:
                columns[field.name] = [item for value in values for item in value]
        return WindowRows(**columns)
