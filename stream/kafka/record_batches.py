"""Kafka record batches read a batch at a time into columns, not a record at a time.

kafka-python decodes a fetch one record at a time in Python: five varints, two
byte copies and two objects per record, about 87 % of a bare consumer's time on
1.2 KB records (py-spy, BENCHMARKS.md). Here only each record's length is read in
a Python loop (the one sequential dependency: a record starts where the previous
ends); every other field of every record is decoded by numpy at once.

Message format v2 (KIP-98), the records section of a batch:

    Record => Length:varint Attributes:int8 TimestampDelta:varlong OffsetDelta:varint
              KeyLength:varint Key ValueLength:varint Value HeaderCount:varint Headers

varints are zigzag base-128; a negative key or value length means null.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from kafka.errors import CorruptRecordError

from stream.kafka.record_columns import PAD, PADDING, RecordColumns, read_headers, varint_at

NUMPY_FROM_RECORDS = 16  # numpy's ~15 us per batch beats ~3 us per record from here on


class SmallBatches:
    """Consecutive small record batches read record by record into one RecordColumns.

    numpy's fixed cost (~15 us a batch) is more than a one-record batch's whole
    kafka-python parse; records of batches under NUMPY_FROM_RECORDS are read with
    plain Python (~3 us each) and handed out together.
    """

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self._sections: list[bytes] = []
        self._size = 0  # bytes in _sections: where the next section starts in the buffer
        self._rows: list[tuple[int, ...]] = []

    def __len__(self) -> int:
        """Records held."""
        return len(self._rows)

    def add(self, batch: Any) -> None:
        """Read the records of a kafka-python DefaultRecordBatch (message format v2)."""
        batch._maybe_uncompress()
        section = bytes(memoryview(batch._buffer)[batch._pos :])
        try:
            rows = _field_rows(section, len(section), batch.records_count)
        except IndexError as error:  # a length pointing past the section's end
            raise CorruptRecordError(f"a record runs past its batch: {error}") from None
        base, first_ts, at = batch.base_offset, batch.first_timestamp, self._size
        append_time = batch.timestamp_type == batch.LOG_APPEND_TIME
        for ts_delta, offset_delta, key, key_n, value, value_n, head, head_n, end in rows:
            if head_n < 0:
                raise CorruptRecordError(f"negative header count at offset {base + offset_delta}")
            if (read_headers(section, head, head_n)[1] if head_n else head) != end:
                raise CorruptRecordError(
                    f"record length disagrees with its fields at offset {base + offset_delta}"
                )
            timestamp = batch.max_timestamp if append_time else first_ts + ts_delta
            self._rows.append(
                (
                    base + offset_delta,
                    timestamp,
                    at + key,
                    max(key_n, -1),
                    at + value,
                    max(value_n, -1),
                    at + head,
                    head_n,
                )
            )
        self._sections.append(section)
        self._size += len(section)

    def flush(self) -> RecordColumns | None:
        """The records read since the last flush, as one RecordColumns (None when none)."""
        if not self._rows:
            return None
        table = np.array(self._rows, dtype=np.int64).T.copy()  # [8, n]
        self._sections.append(PADDING)
        columns = RecordColumns(self.topic, self.partition, b"".join(self._sections), *table)
        self._sections, self._size, self._rows = [], 0, []
        return columns


def read_batch(batch: Any, topic: str, partition: int) -> RecordColumns:
    """The records of a kafka-python DefaultRecordBatch (message format v2), decompressed."""
    batch._maybe_uncompress()  # a codec's bytes become the records section at _pos 0
    records = memoryview(batch._buffer)[batch._pos :]
    first_ts, max_ts = batch.first_timestamp, batch.max_timestamp
    return read_records(
        records,
        batch.records_count,
        batch.base_offset,
        first_ts,
        max_ts if batch.timestamp_type == batch.LOG_APPEND_TIME else None,
        topic,
        partition,
    )


def read_records(
    records: bytes | memoryview,
    count: int,
    base_offset: int,
    first_timestamp_ms: int,
    log_append_time_ms: int | None,
    topic: str,
    partition: int,
) -> RecordColumns:
    """Columns of the `count` records of one batch's records section (see the module doc)."""
    buffer = b"".join((records, PADDING))  # one copy, padded
    fields = _fields_at_once(buffer, len(buffer) - PAD, count)
    ts_delta, offset_delta, key_starts, key_lengths, value_starts, value_lengths = fields[:6]
    header_starts, header_counts, ends = fields[6:]
    if (header_counts < 0).any():
        at = _first(base_offset, offset_delta, header_counts < 0)
        raise CorruptRecordError(f"negative header count at offset {at}")
    record_ends = header_starts.copy()
    for k in np.flatnonzero(header_counts).tolist():
        record_ends[k] = read_headers(buffer, int(header_starts[k]), int(header_counts[k]))[1]
    if (record_ends != ends).any():
        raise CorruptRecordError(
            "record length disagrees with its fields at offset "
            f"{_first(base_offset, offset_delta, record_ends != ends)}"
        )
    if log_append_time_ms is None:
        timestamps = ts_delta + first_timestamp_ms
    else:
        timestamps = np.full(count, log_append_time_ms, dtype=np.int64)
    return RecordColumns(
        topic,
        partition,
        buffer,
        offset_delta + base_offset,
        timestamps,
        key_starts,
        np.maximum(key_lengths, -1),
        value_starts,
        np.maximum(value_lengths, -1),
        header_starts,
        header_counts,
    )


_Fields = tuple[npt.NDArray[np.int64], ...]


def _fields_at_once(buffer: bytes, size: int, count: int) -> _Fields:
    """Every field of every record with numpy, after one pass over the record lengths."""
    starts, ends = _record_bounds(buffer, size, count)  # [n] after each Length; each end
    data = np.frombuffer(buffer, dtype=np.uint8)
    at = starts + 1  # Attributes: one byte, unused in v2
    ts_delta, at = _varints(data, at)
    offset_delta, at = _varints(data, at)
    key_lengths, key_starts = _varints(data, at)
    at = _skip(key_starts, key_lengths, ends, "key")
    value_lengths, value_starts = _varints(data, at)
    at = _skip(value_starts, value_lengths, ends, "value")
    header_counts, header_starts = _varints(data, at)
    return (
        ts_delta,
        offset_delta,
        key_starts,
        key_lengths,
        value_starts,
        value_lengths,
        header_starts,
        header_counts,
        ends,
    )


# one record's fields: ts delta, offset delta, key start/length, value start/length,
# header start/count, end
_FieldRow = tuple[int, int, int, int, int, int, int, int, int]


def _field_rows(buffer: bytes, size: int, count: int) -> list[_FieldRow]:
    rows: list[_FieldRow] = []
    pos = 0
    for k in range(count):
        if pos >= size:
            raise CorruptRecordError(f"records section ends after {k} of {count} records")
        length, pos = _zigzag_at(buffer, pos)
        if length < 0:
            raise CorruptRecordError(f"negative record length {length}")
        end = pos + length
        ts_delta, at = _zigzag_at(buffer, pos + 1)  # after the Attributes byte
        offset_delta, at = _zigzag_at(buffer, at)
        key_length, key_start = _zigzag_at(buffer, at)
        value_length, value_start = _zigzag_at(buffer, key_start + max(key_length, 0))
        header_count, header_start = _zigzag_at(buffer, value_start + max(value_length, 0))
        if header_start > end:
            raise CorruptRecordError("a record's fields run past the record's end")
        rows.append(
            (
                ts_delta,
                offset_delta,
                key_start,
                key_length,
                value_start,
                value_length,
                header_start,
                header_count,
                end,
            )
        )
        pos = end
    if pos != size:
        raise CorruptRecordError(f"{size - pos} unconsumed bytes after all records consumed")
    return rows


def _zigzag_at(data: bytes, pos: int) -> tuple[int, int]:
    """The zigzag varint at pos, decoded, and the position after it."""
    byte = data[pos]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos + 1
    second = data[pos + 1]
    if second < 0x80:
        raw = (byte & 0x7F) | (second << 7)
        return (raw >> 1) ^ -(raw & 1), pos + 2
    raw, pos = varint_at(data, pos)
    return (raw >> 1) ^ -(raw & 1), pos


def _record_bounds(
    section: bytes, size: int, count: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """[n] where each record's fields start (after its Length) and where it ends."""
    starts = [0] * count
    ends = [0] * count
    pos = 0
    for k in range(count):
        if pos >= size:
            raise CorruptRecordError(f"records section ends after {k} of {count} records")
        byte = section[pos]
        if byte < 0x80:  # records under 64 bytes
            raw, pos = byte, pos + 1
        elif section[pos + 1] < 0x80:  # under 8 KiB: most sensor records
            raw, pos = (byte & 0x7F) | (section[pos + 1] << 7), pos + 2
        else:
            raw, pos = varint_at(section, pos)
        length = (raw >> 1) ^ -(raw & 1)
        if length < 0:
            raise CorruptRecordError(f"negative record length {length}")
        starts[k] = pos
        pos += length
        ends[k] = pos
    if pos != size:
        raise CorruptRecordError(f"{size - pos} unconsumed bytes after all records consumed")
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


def _varints(
    data: npt.NDArray[np.uint8], at: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The zigzag varints starting at each of `at`, and the positions after them."""
    byte = data[at]
    raw = (byte & 0x7F).astype(np.uint64)
    after = at + 1
    more = np.flatnonzero(byte >= 0x80)
    shift = 7
    while len(more):
        if shift > 63:
            raise CorruptRecordError("varint longer than 10 bytes")
        byte = data[after[more]]
        raw[more] |= (byte & 0x7F).astype(np.uint64) << np.uint64(shift)
        after[more] += 1
        more = more[byte >= 0x80]
        shift += 7
    value = (raw >> np.uint64(1)).astype(np.int64) ^ -(raw & np.uint64(1)).astype(np.int64)
    return value, after


def _skip(
    at: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    field: str,
) -> npt.NDArray[np.int64]:
    """Positions after a bytes field of `lengths` (null: 0 bytes), checked against record ends."""
    after = at + np.maximum(lengths, 0)
    if (after > ends).any():
        raise CorruptRecordError(f"a record's {field} runs past the record's end")
    return after


def _first(
    base_offset: int, offset_delta: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]
) -> int:
    return base_offset + int(offset_delta[np.flatnonzero(mask)[0]])
