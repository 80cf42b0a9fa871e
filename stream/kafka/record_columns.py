"""A run of Kafka records of one partition as columns: offsets, timestamps, and where each
record's key, value and headers lie in one shared buffer (stream/kafka/record_batches.py reads
them).

A length of -1 is a null key or value. The buffer ends in PAD zero bytes so that a
varint read near its end stays inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from kafka.errors import CorruptRecordError

PAD = 10  # a varint is at most 10 bytes
PADDING = bytes(PAD)


@dataclass(frozen=True, slots=True)
class RecordColumns:
    """Consecutive records of one partition: offsets, timestamps, and where keys and values lie.

    Keys, values and headers stay in `buffer` (the batch's records section); a length
    of -1 is a null key or value.
    """

    topic: str
    partition: int
    buffer: bytes  # padded with PAD zero bytes
    offsets: npt.NDArray[np.int64]  # [n]
    timestamps_ms: npt.NDArray[np.int64]  # [n]
    key_starts: npt.NDArray[np.int64]  # [n]
    key_lengths: npt.NDArray[np.int64]  # [n] -1 = null
    value_starts: npt.NDArray[np.int64]  # [n]
    value_lengths: npt.NDArray[np.int64]  # [n] -1 = null
    header_starts: npt.NDArray[np.int64]  # [n] first byte after the header count
    header_counts: npt.NDArray[np.int64]  # [n]

    def __len__(self) -> int:
        """The number of records."""
        return len(self.offsets)

    def pick(self, which: slice | npt.NDArray[Any]) -> RecordColumns:
        """The records at `which` (a slice or a boolean mask), same buffer."""
        return RecordColumns(
            self.topic,
            self.partition,
            self.buffer,
            self.offsets[which],
            self.timestamps_ms[which],
            self.key_starts[which],
            self.key_lengths[which],
            self.value_starts[which],
            self.value_lengths[which],
            self.header_starts[which],
            self.header_counts[which],
        )

    def values(self) -> list[bytes | None]:
        """Each record's value bytes (None for a tombstone)."""
        return _slices(self.buffer, self.value_starts, self.value_lengths)

    def keys(self) -> list[bytes | None]:
        """Each record's key bytes (None when the record has no key)."""
        return _slices(self.buffer, self.key_starts, self.key_lengths)

    def headers(self, k: int) -> list[tuple[str, bytes | None]]:
        """Record k's headers, in order."""
        if not self.header_counts[k]:
            return []
        return read_headers(self.buffer, int(self.header_starts[k]), int(self.header_counts[k]))[0]

    @property
    def size_bytes(self) -> int:
        """Key and value bytes of these records (what kafka-python's fetch metrics count)."""
        return int(np.maximum(self.key_lengths, 0).sum() + np.maximum(self.value_lengths, 0).sum())

    @classmethod
    def of_records(cls, topic: str, partition: int, records: Sequence[Any]) -> RecordColumns:
        """Columns of records already decoded one by one (kafka-python's record objects)."""
        parts: list[bytes] = []
        starts: list[list[int]] = [[], []]
        lengths: list[list[int]] = [[], []]
        at = 0
        for record in records:
            for field, data in enumerate((record.key, record.value)):
                starts[field].append(at)
                lengths[field].append(-1 if data is None else len(data))
                if data is not None:
                    parts.append(data)
                    at += len(data)
        heads = [_encode_headers(record.headers or ()) for record in records]
        header_starts = np.cumsum([0, *map(len, heads)])[:-1] + at
        n = len(records)
        return cls(
            topic,
            partition,
            b"".join(parts) + b"".join(heads) + PADDING,
            np.fromiter((r.offset for r in records), np.int64, n),
            np.fromiter((r.timestamp for r in records), np.int64, n),
            np.array(starts[0], dtype=np.int64),
            np.array(lengths[0], dtype=np.int64),
            np.array(starts[1], dtype=np.int64),
            np.array(lengths[1], dtype=np.int64),
            header_starts.astype(np.int64),
            np.array([len(record.headers or ()) for record in records], dtype=np.int64),
        )


def varint_at(data: bytes, pos: int) -> tuple[int, int]:
    """The raw (not yet zigzag-decoded) varint at pos, and the position after it."""
    raw = shift = 0
    for _ in range(10):
        if pos >= len(data):
            raise CorruptRecordError("varint runs past the end of the records section")
        byte = data[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            return raw, pos
        shift += 7
    raise CorruptRecordError("varint longer than 10 bytes")


def read_headers(buffer: bytes, pos: int, count: int) -> tuple[list[tuple[str, bytes | None]], int]:
    """`count` headers starting at pos (rare: read one by one), and the position after them."""
    headers = []
    for _ in range(count):
        raw, pos = varint_at(buffer, pos)
        key_length = (raw >> 1) ^ -(raw & 1)
        if key_length < 0:
            raise CorruptRecordError(f"negative header key size {key_length}")
        try:
            key = buffer[pos : pos + key_length].decode("utf-8")
        except UnicodeDecodeError as error:
            raise CorruptRecordError(f"a header key is not UTF-8: {error}") from None
        pos += key_length
        raw, pos = varint_at(buffer, pos)
        value_length = (raw >> 1) ^ -(raw & 1)
        value = None
        if value_length >= 0:
            value = buffer[pos : pos + value_length]
            pos += value_length
        headers.append((key, value))
    return headers, pos


def _encode_headers(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    """Headers in the records-section encoding (what _read_headers reads back)."""
    out = bytearray()
    for key, value in headers:
        name = key.encode("utf-8")
        out += _zigzag(len(name)) + name
        out += _zigzag(-1 if value is None else len(value)) + (value or b"")
    return bytes(out)


def _zigzag(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def _slices(
    buffer: bytes, starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> list[bytes | None]:
    if not len(starts):
        return []
    if (lengths >= 0).all():
        return [
            buffer[a:b] for a, b in zip(starts.tolist(), (starts + lengths).tolist(), strict=True)
        ]
    return [
        None if n < 0 else buffer[a : a + n]
        for a, n in zip(starts.tolist(), lengths.tolist(), strict=True)
    ]
