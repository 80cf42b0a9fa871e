"""Between decoded polls and windows/: the window store, policy dead letters, window rows."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from stream.config.schema import WindowsConfig
from stream.core.columns import WindowRows
from stream.decode.polled import PollIndex
from stream.decode.types import DeadLetter, RawRecord
from windows import Rejected, WindowBatch, WindowStore


def make_window_store(config: WindowsConfig, channels: int) -> WindowStore:
    """The window store for the `[windows]` config and the model's channel count."""
    return WindowStore(config.window_config(channels))


def policy_dead_letters(
    records: Sequence[RawRecord],
    all_record_index: npt.NDArray[np.int32],
    appended_record_index: npt.NDArray[np.int32],
    rejected: Rejected,
) -> list[DeadLetter]:
    """`late_policy = "dead_letter"`: each record with samples the window policy dropped.

    The record goes out whole (original bytes); its other samples, if any, were used.
    """
    per_record = np.bincount(all_record_index, minlength=len(records))  # samples per record
    rejected_records = appended_record_index[rejected.positions]
    letters: list[DeadLetter] = []
    for record in np.unique(rejected_records).tolist():
        mine = rejected_records == record
        reasons = [r for r, m in zip(rejected.reasons, mine.tolist(), strict=True) if m]
        late, duplicate = reasons.count("late"), reasons.count("duplicates")
        reason = "late_sample" if late else "duplicate_sample"
        message = (
            f"{late + duplicate} of {per_record[record]} samples dropped by the window policy "
            f"({late} older than the device's newest beyond windows.reorder_ms, {duplicate} "
            "repeating a timestamp); the record's other samples were used"
        )
        letters.append(DeadLetter.of(records[record], reason, message))
    return letters


def to_rows(batch: WindowBatch, index: PollIndex, config: WindowsConfig) -> WindowRows:
    """Window rows for the batcher, with latency origins and recovery anchors."""
    count = len(batch.device_ids)
    return WindowRows(
        device_ids=list(batch.device_ids),
        data=batch.data,
        start_ts_ms=batch.start_ts_ms,
        end_ts_ms=batch.end_ts_ms,
        anchor_ts_ms=batch.anchor_ts_ms,
        sources=batch.last_sources,
        first_offsets=batch.first_offsets,
        last_offsets=batch.last_offsets,
        ready_offsets=batch.ready_offsets,
        ready_record_ts_ms=index.timestamps_of(batch.last_sources, batch.ready_offsets),
        enqueued_at_s=np.full(count, time.monotonic()),
    )
