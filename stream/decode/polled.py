"""One poll's records as the columnar fetch hands them out, read as a sequence of InputRecords.

The decoders want a poll's values and keys as lists and, for the few records they
reject, the whole record; the window bridge wants offsets and Kafka timestamps as
arrays. Both come from the columns without one object per record.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import overload

import numpy as np
import numpy.typing as npt

from stream.decode.binary_records import JoinedValues
from stream.decode.types import InputRecord, RawRecord
from stream.kafka.record_columns import RecordColumns

_OFFSET_BITS = 40  # Kafka offsets stay far below 2**40 in practice; sources above it


@dataclass(frozen=True)
class PollIndex:
    """Per-record source ids, offsets and Kafka timestamps of one poll."""

    sources: npt.NDArray[np.int32]  # [R]
    offsets: npt.NDArray[np.int64]  # [R]
    timestamps_ms: npt.NDArray[np.int64]  # [R]

    @staticmethod
    def empty() -> PollIndex:
        """The index of a poll that returned no records."""
        none = np.zeros(0, dtype=np.int64)
        return PollIndex(np.zeros(0, dtype=np.int32), none, none.copy())

    def next_offsets(self) -> dict[int, int]:
        """Source -> one past the highest offset read in this poll."""
        if not len(self.sources):
            return {}
        result: dict[int, int] = {}
        for source in np.unique(self.sources).tolist():
            result[source] = int(self.offsets[self.sources == source].max()) + 1
        return result

    def timestamps_of(
        self, sources: npt.NDArray[np.int32], offsets: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """Kafka timestamps of the given records (now, for records not in this poll)."""
        result = np.full(len(offsets), time.time_ns() // 1_000_000, dtype=np.int64)
        if not len(self.offsets) or not len(offsets):
            return result
        keys = (self.sources.astype(np.int64) << _OFFSET_BITS) | self.offsets
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        wanted = (sources.astype(np.int64) << _OFFSET_BITS) | offsets
        at = np.searchsorted(sorted_keys, wanted)
        found = at < len(sorted_keys)
        found[found] = sorted_keys[at[found]] == wanted[found]
        result[found] = self.timestamps_ms[order[at[found]]]
        return result


class PolledRecords(Sequence[InputRecord]):
    """The records of one poll, in poll order: columns pieces with their source ids."""

    def __init__(self, pieces: list[tuple[int, RecordColumns]]) -> None:
        self.pieces = pieces  # (source id, columns) in poll order
        sizes = [len(columns) for _, columns in pieces]
        self._ends = np.cumsum(sizes, dtype=np.int64)  # [P] one past each piece's last record

    def __len__(self) -> int:
        """The number of records."""
        return int(self._ends[-1]) if len(self._ends) else 0

    @overload
    def __getitem__(self, k: int) -> InputRecord: ...

    @overload
    def __getitem__(self, k: slice) -> list[InputRecord]: ...

    def __getitem__(self, k: int | slice) -> InputRecord | list[InputRecord]:
        """Record k of the poll, copied out of its columns."""
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"record {k} of a poll of {len(self)}")
        piece = int(np.searchsorted(self._ends, k, side="right"))
        first = int(self._ends[piece - 1]) if piece else 0
        return _record(self.pieces[piece][1], k - first)

    def __iter__(self) -> Iterator[InputRecord]:
        for _, columns in self.pieces:
            for k in range(len(columns)):
                yield _record(columns, k)

    @cached_property
    def values(self) -> list[bytes | None]:
        """[R] each record's value (None for a tombstone)."""
        return [value for _, columns in self.pieces for value in columns.values()]

    @cached_property
    def keys(self) -> list[bytes | None]:
        """[R] each record's key (None when it has none)."""
        return [key for _, columns in self.pieces for key in columns.keys()]

    def poll_index(self) -> PollIndex:
        """Per-record source ids, offsets and Kafka timestamps."""
        if not self.pieces:
            return PollIndex.empty()
        sizes = np.diff(self._ends, prepend=0)  # [P] records per piece
        sources = np.repeat(np.array([s for s, _ in self.pieces], dtype=np.int32), sizes)
        return PollIndex(
            sources,
            np.concatenate([columns.offsets for _, columns in self.pieces]),
            np.concatenate([columns.timestamps_ms for _, columns in self.pieces]),
        )


def joined_values(records: Sequence[RawRecord]) -> JoinedValues:
    """The records' values and keys in one buffer (for a poll: its columns' buffers, joined)."""
    if not isinstance(records, PolledRecords):
        return JoinedValues.of(*values_and_keys(records))
    buffers: list[bytes] = []
    base: dict[int, int] = {}  # id(buffer) -> where it starts in the joined buffer
    size = 0
    for _, columns in records.pieces:
        if id(columns.buffer) not in base:
            base[id(columns.buffer)] = size
            buffers.append(columns.buffer)
            size += len(columns.buffer)
    pieces = [columns for _, columns in records.pieces]
    at = [base[id(columns.buffer)] for columns in pieces]

    def joined(field: str, shift: bool) -> npt.NDArray[np.int64]:
        parts = [getattr(c, field) + (a if shift else 0) for c, a in zip(pieces, at, strict=True)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    return JoinedValues(
        np.frombuffer(b"".join(buffers), np.uint8),
        joined("value_starts", True),
        np.maximum(joined("value_lengths", False), 0),
        joined("key_starts", True),
        joined("key_lengths", False),
    )


def values_and_keys(
    records: Sequence[RawRecord],
) -> tuple[list[bytes | None], list[bytes | None]]:
    """[R] values and [R] keys of any sequence of records (from the columns for a poll)."""
    if isinstance(records, PolledRecords):
        return records.values, records.keys
    return [record.value for record in records], [record.key for record in records]


def _record(columns: RecordColumns, k: int) -> InputRecord:
    key_length, value_length = int(columns.key_lengths[k]), int(columns.value_lengths[k])
    key_start, value_start = int(columns.key_starts[k]), int(columns.value_starts[k])
    buffer = columns.buffer
    return InputRecord(
        topic=columns.topic,
        partition=columns.partition,
        offset=int(columns.offsets[k]),
        timestamp_ms=int(columns.timestamps_ms[k]),
        key=None if key_length < 0 else buffer[key_start : key_start + key_length],
        value=None if value_length < 0 else buffer[value_start : value_start + value_length],
        headers=columns.headers(k),
    )
