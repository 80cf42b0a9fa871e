"""The columnar batch reader against kafka-python's own record-at-a-time reader."""

from __future__ import annotations

import struct

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder

from stream.kafka.record_batches import SmallBatches, read_batch
from stream.kafka.record_columns import RecordColumns

# Many records are read with numpy (read_batch), a few record by record (SmallBatches):
# every test runs both readers.
BOTH_READERS = pytest.mark.parametrize("reader", ["numpy", "one-by-one"])


CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}  # attribute bits
BYTES = st.one_of(st.none(), st.binary(max_size=300))
HEADER = st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=20)))
RECORD = st.tuples(
    st.integers(0, 10**7),  # timestamp delta from the batch's first record, ms
    BYTES,  # key
    BYTES,  # value
    st.lists(HEADER, max_size=3),
)


def read(reader, batch, topic="t", partition=3):
    if reader == "numpy":
        return read_batch(batch, topic, partition)
    small = SmallBatches(topic, partition)
    small.add(batch)
    return small.flush()


def build_batch(records, codec=0, base_offset=0, skip=0):
    """Raw bytes of one v2 batch written by kafka-python's builder (the broker's format)."""
    builder = MemoryRecordsBuilder(2, codec, batch_size=10**8, offset=base_offset)
    start_ms = 1_732_280_000_000
    for k, (delta_ms, key, value, headers) in enumerate(records):
        if k and skip:
            builder.skip(skip)  # offsets with gaps, as compaction leaves them
        builder.append(start_ms + delta_ms, key, value, headers)
    builder.close()
    return builder.buffer()


def reference(raw):
    """kafka-python's per-record reading of the same bytes."""
    batch = MemoryRecords(raw).next_batch()
    return [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch]


def columnar(raw, reader):
    columns = read(reader, MemoryRecords(raw).next_batch())
    headers = [columns.headers(k) for k in range(len(columns))]
    rows = zip(
        columns.offsets.tolist(),
        columns.timestamps_ms.tolist(),
        columns.keys(),
        columns.values(),
        headers,
        strict=True,
    )
    return [tuple(row) for row in rows]


@BOTH_READERS
@settings(max_examples=300, deadline=None)
@given(
    st.lists(RECORD, min_size=1, max_size=40),
    st.sampled_from(sorted(CODECS)),
    st.integers(0, 2**30),  # kafka-python's builder packs offsets as int32
    st.sampled_from([0, 1, 70]),
)
def test_columns_match_kafka_python_record_for_record(reader, records, codec, base_offset, skip):
    raw = build_batch(records, CODECS[codec], base_offset, skip)
    assert columnar(raw, reader) == reference(raw)


@BOTH_READERS
def test_large_values_and_offset_deltas_use_multibyte_varints(reader):
    records = [(k * 1000, f"d{k}".encode(), bytes(1200 + k), []) for k in range(300)]
    raw = build_batch(records, skip=100)  # offset deltas up to ~30,000: 3-byte varints
    assert columnar(raw, reader) == reference(raw)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
@BOTH_READERS
def test_a_compressed_batch_of_megabytes_reads_whole(reader, codec):
    # past zstd's 1 MiB output hint, snappy's 32 KiB xerial blocks and lz4's 64 KiB blocks
    records = [(k, b"dev", bytes([k % 251]) * 5000 + str(k).encode(), []) for k in range(400)]
    raw = build_batch(records, CODECS[codec])
    assert len(raw) < 2_000_000 / 10  # really compressed
    assert columnar(raw, reader) == reference(raw)


@BOTH_READERS
def test_log_append_time_batches_stamp_every_record_with_the_batch_max(reader):
    raw = bytearray(build_batch([(5, b"k", b"v", []), (9, b"k", b"w", [])]))
    attributes_at = DefaultRecordBatch.ATTRIBUTES_OFFSET
    attributes = struct.unpack_from(">h", raw, attributes_at)[0] | 0x08  # LOG_APPEND_TIME
    struct.pack_into(">h", raw, attributes_at, attributes)
    batch = MemoryRecords(bytes(raw)).next_batch()
    columns = read(reader, batch)
    assert columns.timestamps_ms.tolist() == [batch.max_timestamp] * 2


def corrupt(raw: bytes, at_from_end: int, byte: int) -> bytes:
    out = bytearray(raw)
    out[len(out) - at_from_end] = byte
    return bytes(out)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda raw: raw[:-1],  # the records section one byte short
        lambda raw: corrupt(raw, 1, 0x02),  # last header count 0 -> 1: reads past the record
        lambda raw: raw + b"\x00",  # a byte after the last record
    ],
    ids=["truncated", "header-count", "trailing"],
)
@BOTH_READERS
def test_a_batch_whose_records_disagree_with_their_lengths_is_corrupt(reader, mangle):
    raw = build_batch([(0, b"key", b"value-bytes", []), (1, None, b"xyz", [])])
    mangled = mangle(raw)
    head = bytearray(mangled)
    struct.pack_into(">i", head, 8, len(mangled) - 12)  # keep the batch length consistent
    with pytest.raises(CorruptRecordError):
        list(DefaultRecordBatch(bytes(head)))  # kafka-python refuses it too
    with pytest.raises(CorruptRecordError):
        read(reader, DefaultRecordBatch(bytes(head)))


class Record:
    def __init__(self, offset, timestamp, key, value, headers):
        self.offset, self.timestamp, self.key, self.value = offset, timestamp, key, value
        self.headers = headers


def test_columns_of_decoded_records_round_trip_every_field():
    records = [
        Record(7, 100, b"a", b"one", []),
        Record(8, 101, None, None, [("h", b"x"), ("n", None)]),
        Record(10, 99, b"", b"", []),
    ]
    columns = RecordColumns.of_records("t", 1, records)
    assert columns.offsets.tolist() == [7, 8, 10]
    assert columns.timestamps_ms.tolist() == [100, 101, 99]
    assert columns.keys() == [b"a", None, b""]
    assert columns.values() == [b"one", None, b""]
    assert [columns.headers(k) for k in range(3)] == [[], [("h", b"x"), ("n", None)], []]
    picked = columns.pick(np.array([False, True, True]))
    assert picked.values() == [None, b""] and picked.offsets.tolist() == [8, 10]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(RECORD, min_size=1, max_size=5), min_size=1, max_size=6))
def test_small_batches_read_together_match_each_batch_read_alone(batches):
    small = SmallBatches("t", 3)
    expected = []
    base = 0
    for records in batches:
        raw = build_batch(records, base_offset=base)
        small.add(MemoryRecords(raw).next_batch())
        expected += reference(raw)
        base += len(records)
    columns = small.flush()
    got = zip(
        columns.offsets.tolist(),
        columns.timestamps_ms.tolist(),
        columns.keys(),
        columns.values(),
        [columns.headers(k) for k in range(len(columns))],
        strict=True,
    )
    assert [tuple(row) for row in got] == expected
    assert small.flush() is None  # flushed means empty
