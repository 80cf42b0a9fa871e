"""Binary SSB1 chunks: encode -> decode round trips, every dead-letter reason, mixed polls."""

from __future__ import annotations

import math
import struct

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.config.schema import RecordsConfig
from stream.decode.binary_explain import explain_chunk
from stream.decode.binary_format import HEADER_BYTES, MAGIC, MAX_TS_MS, encode_chunk, encode_chunks
from stream.decode.binary_records import BinaryChunkDecoder, JoinedValues
from stream.decode.router import RecordDecoder
from stream.decode.types import DEAD_LETTER_REASONS, InputRecord, SampleBatch
from tests.stream.polls import decode_both

TS = 1_732_280_000_123
LIMITS = RecordsConfig(max_record_bytes=4096, max_chunk_samples=50, max_device_id_length=16)
ROWS = np.arange(12, dtype=np.float32).reshape(4, 3) / 4  # [n=4, C=3]


def record(value: bytes | dict | None, key: bytes | None = None, offset: int = 0) -> InputRecord:
    """An InputRecord whose value is the given bytes, or the given object as JSON."""
    raw = orjson.dumps(value) if isinstance(value, dict) else value
    return InputRecord("samples", 1, offset, TS, key, raw, [])


def decode(*records: InputRecord, channels: int = 3):
    return decode_both(RecordDecoder(channels, LIMITS), list(records))


def craft(
    device: bytes = b"d",
    ts_ms: int = TS,
    interval_ms: float = 10.0,
    values: np.ndarray = ROWS,
    *,
    magic: bytes = MAGIC,
    flags: int = 0,
    channels: int | None = None,
    count: int | None = None,
    tail: bytes = b"",
) -> bytes:
    """A binary chunk with every header field settable, including to wrong values."""
    count = len(values) if count is None else count
    channels = values.shape[1] if channels is None else channels
    header = struct.pack(
        "<4sBBHqdH", magic, flags, channels, count, ts_ms, interval_ms, len(device)
    )
    return header + device + values.astype("<f4").tobytes() + tail


def with_value(row: int, column: int, number: float) -> np.ndarray:
    rows = ROWS.copy()
    rows[row, column] = number
    return rows


def test_binary_chunk_decodes_like_the_same_json_chunk():
    json_chunk = {"device_id": "glove-7", "ts": TS, "interval_ms": 10, "values": ROWS.tolist()}
    binary = encode_chunk("glove-7", TS, 10, ROWS)
    from_json, dead_json = decode(record(json_chunk, key=b"glove-7"))
    from_binary, dead_binary = decode(record(binary, key=b"glove-7"))
    assert dead_json == dead_binary == []
    assert from_binary.device_ids == from_json.device_ids == ["glove-7"] * 4
    assert from_binary.timestamps_ms.tolist() == from_json.timestamps_ms.tolist()
    assert from_binary.timestamps_ms.tolist() == [TS, TS + 10, TS + 20, TS + 30]
    assert from_binary.values.dtype == np.float32
    np.testing.assert_array_equal(from_binary.values, from_json.values)
    assert from_binary.record_index.tolist() == from_json.record_index.tolist() == [0] * 4


def test_the_layout_is_the_documented_one():
    value = encode_chunk("dé", 5, 2.5, np.array([[1.0, 2.0]]))
    assert value[:4] == b"SSB1" and value[4] == 0 and value[5] == 2
    assert struct.unpack_from("<HqdH", value, 6) == (1, 5, 2.5, 3)
    assert value[HEADER_BYTES : HEADER_BYTES + 3] == "dé".encode()
    assert np.frombuffer(value, "<f4", offset=HEADER_BYTES + 3).tolist() == [1.0, 2.0]
    assert len(value) == HEADER_BYTES + 3 + 4 * 2


def test_fractional_interval_rounds_half_to_even_like_json():
    rows = np.ones((5, 3), dtype=np.float32)
    for interval in (7.8125, 2.5):
        json_chunk = {"device_id": "d", "ts": 0, "interval_ms": interval, "values": rows.tolist()}
        from_json, _ = decode(record(json_chunk))
        from_binary, _ = decode(record(encode_chunk("d", 0, interval, rows)))
        assert from_binary.timestamps_ms.tolist() == from_json.timestamps_ms.tolist()
    assert from_binary.timestamps_ms.tolist() == [0, 2, 5, 8, 10]  # 2.5 -> 2, 7.5 -> 8


def test_a_single_sample_is_a_chunk_of_one():
    batch, dead = decode(record(encode_chunk("d", TS, 1, ROWS[:1])))
    assert dead == [] and batch.timestamps_ms.tolist() == [TS]
    assert batch.values.tolist() == [[0.0, 0.25, 0.5]]


MALFORMED = [
    (craft(values=np.zeros((340, 3))), None, "too_large", None),
    (
        b"SSB1\x00\x03",
        None,
        "malformed_binary",
        "the binary chunk is 6 bytes, shorter than its 26-byte header",
    ),
    (
        craft(magic=b"SSB2"),
        None,
        "malformed_binary",
        "binary chunk version b'2'; this worker reads version 1 (b'SSB1')",
    ),
    (craft(flags=1), None, "malformed_binary", "flags: expected 0, got 1"),
    (
        craft()[:-1],
        None,
        "malformed_binary",
        "the header describes 75 bytes (1-byte device id, 4 samples x 3 channels), "
        "the value has 74: truncated",
    ),
    (craft(tail=b"\x00"), None, "malformed_binary", None),
    (craft(count=5), None, "malformed_binary", None),
    (
        craft(device=b""),
        None,
        "missing_field",
        "device_id: expected a non-empty UTF-8 id, got 0 bytes",
    ),
    (
        craft(device=b"ab\xff"),
        None,
        "invalid_utf8",
        "device_id is not UTF-8: invalid start byte at byte 2",
    ),
    (
        craft(device=b"x" * 17),
        None,
        "too_large",
        "device_id: 17 characters; at most 16 (records.max_device_id_length)",
    ),
    (craft(device="é".encode() * 16), None, None, None),  # 32 bytes, 16 characters: fine
    (
        craft(),
        b"other",
        "key_mismatch",
        "the key b'other' differs from device_id 'd'",
    ),
    (craft(), b"", "key_mismatch", None),
    (
        craft(ts_ms=-5),
        None,
        "bad_timestamp",
        f"ts: expected epoch milliseconds in [0, {MAX_TS_MS}], got -5",
    ),
    (craft(ts_ms=MAX_TS_MS + 1), None, "bad_timestamp", None),
    (
        craft(ts_ms=MAX_TS_MS - 20),
        None,
        "bad_timestamp",
        f"ts: the chunk's last sample falls after {MAX_TS_MS}",
    ),
    (
        craft(interval_ms=0.5),
        None,
        "bad_interval",
        "interval_ms: expected a number of milliseconds >= 1, got 0.5",
    ),
    (craft(interval_ms=math.nan), None, "bad_interval", None),
    (craft(interval_ms=math.inf), None, "bad_interval", None),
    (craft(interval_ms=-10), None, "bad_interval", None),
    (
        craft(values=np.zeros((0, 3))),
        None,
        "empty_values",
        "values: expected at least one sample, got 0",
    ),
    (
        craft(values=np.zeros((51, 3))),
        None,
        "too_large",
        "values: 51 samples in one chunk; at most 50 (records.max_chunk_samples)",
    ),
    (
        craft(values=np.zeros((2, 4))),
        None,
        "wrong_channel_count",
        "channels: expected 3 (the model's channels), got 4",
    ),
    (
        craft(values=with_value(1, 2, math.nan)),
        None,
        "non_finite_value",
        "values[1][2] (sample 1, channel 2): expected a finite number, got nan",
    ),
    (
        craft(values=with_value(3, 0, -math.inf)),
        None,
        "non_finite_value",
        "values[3][0] (sample 3, channel 0): expected a finite number, got -inf",
    ),
]


@pytest.mark.parametrize(("value", "key", "reason", "message"), MALFORMED)
def test_bad_binary_chunk_gets_its_reason_and_a_precise_message(value, key, reason, message):
    batch, dead = decode(record(value, key))
    assert [letter.reason for letter in dead] == ([reason] if reason else [])
    assert len(batch) == (0 if reason else 4)
    if reason:
        assert dead[0].record.value == value and dead[0].record.key == key
        assert (dead[0].message if message else None) == message
        assert dead[0].message and "\n" not in dead[0].message
        assert explain_chunk(value, key, 3, LIMITS) == (reason, dead[0].message)


def test_the_binary_reasons_are_listed_once_and_all_exercised():
    exercised = {reason for _, _, reason, _ in MALFORMED if reason}
    json_only = {"invalid_json", "not_an_object", "unknown_field", "wrong_type"}
    worker_only = {"late_sample", "duplicate_sample"}
    assert exercised | json_only | worker_only == set(DEAD_LETTER_REASONS)
    assert "malformed_binary" in DEAD_LETTER_REASONS


def test_mixed_json_and_binary_poll_keeps_record_order():
    records = [
        record(encode_chunk("a", 100, 1, ROWS[:2]), offset=0),
        record({"device_id": "b", "ts": 200, "values": [9, 9, 9]}, offset=1),
        record(craft(flags=3), offset=2),
        record(b"{broken", offset=3),
        record(None, offset=4),
        record(
            {"device_id": "c", "ts": 300, "interval_ms": 5, "values": [[1, 1, 1]] * 3}, offset=5
        ),
        record(encode_chunk("é-d", 400, 2, ROWS[:1]), key="é-d".encode(), offset=6),
        record(encode_chunk("a", 102, 1, ROWS[2:]), offset=7),
    ]
    batch, dead = decode(*records)
    assert batch.device_ids == ["a", "a", "b", "c", "c", "c", "é-d", "a", "a"]
    assert batch.timestamps_ms.tolist() == [100, 101, 200, 300, 305, 310, 400, 102, 103]
    assert batch.record_index.tolist() == [0, 0, 1, 5, 5, 5, 6, 7, 7]
    assert batch.values[:, 0].tolist() == [0.0, 0.75, 9, 1, 1, 1, 0.0, 1.5, 2.25]
    assert batch.record_devices == ["a", "b", "c", "é-d", "a"]
    assert batch.record_counts.tolist() == [2, 1, 3, 1, 2]
    assert batch.record_positions.tolist() == [0, 1, 5, 6, 7]
    assert [(d.record.offset, d.reason) for d in dead] == [
        (2, "malformed_binary"),
        (3, "invalid_json"),
        (4, "invalid_json"),
    ]


def test_bad_records_among_good_ones_leave_the_good_ones_intact():
    good = [encode_chunk(f"dev-{i}", 1000 * i, 10, ROWS + i) for i in range(6)]
    poll = list(good)
    poll[1] = craft(b"dev-1", values=with_value(2, 1, math.inf))  # same size as the good ones
    poll[3] = craft(b"dev-3", flags=1)
    poll[4] = good[4][:-4]
    batch, dead = decode(*[record(v, offset=i) for i, v in enumerate(poll)])
    kept = [0, 2, 5]
    assert [(d.record.offset, d.reason) for d in dead] == [
        (1, "non_finite_value"),
        (3, "malformed_binary"),
        (4, "malformed_binary"),
    ]
    assert batch.record_devices == [f"dev-{i}" for i in kept]
    assert batch.record_positions.tolist() == kept
    np.testing.assert_array_equal(batch.values, np.concatenate([ROWS + i for i in kept]))
    assert batch.timestamps_ms.tolist() == [1000 * i + 10 * s for i in kept for s in range(4)]


def test_chunks_of_different_sizes_and_intervals_in_one_poll():
    sizes = [1, 3, 2, 5]
    rows = [np.full((n, 3), n, dtype=np.float32) for n in sizes]
    poll = [
        record(encode_chunk(f"d{n}", 10 * n, n + 0.5, r)) for n, r in zip(sizes, rows, strict=True)
    ]
    batch, dead = decode(*poll)
    assert dead == []
    assert batch.record_counts.tolist() == sizes
    np.testing.assert_array_equal(batch.values, np.concatenate(rows))
    want = [10 * n + round(i * (n + 0.5)) for n in sizes for i in range(n)]
    assert batch.timestamps_ms.tolist() == want


def test_encode_chunks_matches_encode_chunk_record_by_record():
    values = np.random.default_rng(3).normal(size=(5, 7, 2))
    ids = ["a", "bb", "ü", "a", "longer-id"]
    many = encode_chunks(ids, np.arange(5) * 100, 2.5, values)
    assert many == [encode_chunk(d, i * 100, 2.5, values[i]) for i, d in enumerate(ids)]


@pytest.mark.parametrize(
    ("device_id", "values", "message"),
    [
        ("d", np.zeros((65536, 1)), "values: at most 65535 samples per chunk, got 65536"),
        ("d", np.zeros((1, 256)), "values: at most 255 channels, got 256"),
        ("d", np.zeros(3), "values: expected a 2-d array [n, C], got shape (3,)"),
        ("x" * 65536, np.zeros((1, 3)), "device_id: at most 65535 UTF-8 bytes, got 65536"),
    ],
)
def test_encoder_refuses_what_the_header_cannot_hold(device_id, values, message):
    with pytest.raises(ValueError) as caught:
        encode_chunk(device_id, 0, 1, values)
    assert str(caught.value) == message


def test_run_form_expands_to_the_per_sample_columns_on_demand():
    batch, _ = decode(
        record(encode_chunk("x", 0, 1, ROWS[:3])),
        record({"device_id": "y", "ts": 5, "values": [1, 2, 3]}),
    )
    assert "device_ids" not in batch.__dict__  # not built until asked for
    assert batch.device_ids == ["x", "x", "x", "y"]
    again = SampleBatch.from_samples(
        batch.device_ids, batch.timestamps_ms, batch.values, batch.record_index
    )
    assert again.record_devices == ["x", "y"] and again.record_counts.tolist() == [3, 1]
    assert again.record_positions.tolist() == [0, 1] and again.device_ids == batch.device_ids


device_ids = st.text(min_size=1, max_size=16)
chunks = st.tuples(
    device_ids,
    st.integers(0, 10**13),
    st.one_of(st.integers(1, 1000), st.floats(1, 1000)),
    st.integers(1, 6),  # samples
    st.sampled_from([3, 3, 3, 2, 4]),  # channels: 3 is the model's
    st.booleans(),  # send the key
)


@settings(max_examples=150, deadline=None)
@given(st.lists(chunks, max_size=10), st.randoms(use_true_random=False))
def test_binary_round_trip_matches_the_json_decode_of_the_same_chunks(specs, rng):
    """Random ids, sizes, intervals and channel counts: binary decodes as JSON does."""
    binary, json = [], []
    for offset, (device, ts, interval, n, channels, keyed) in enumerate(specs):
        rows = np.array(
            [[rng.uniform(-1e6, 1e6) for _ in range(channels)] for _ in range(n)], np.float32
        )
        key = device.encode() if keyed else None
        binary.append(record(encode_chunk(device, ts, interval, rows), key, offset))
        obj = {"device_id": device, "ts": ts, "interval_ms": interval, "values": rows.tolist()}
        json.append(record(obj, key, offset))
    got, got_dead = decode(*binary)
    want, want_dead = decode(*json)
    assert [d.record.offset for d in got_dead] == [d.record.offset for d in want_dead]
    assert {d.reason for d in got_dead} <= {"wrong_channel_count"}
    assert {d.reason for d in want_dead} <= {"wrong_channel_count"}
    assert got.device_ids == want.device_ids
    assert got.record_devices == want.record_devices
    assert got.record_counts.tolist() == want.record_counts.tolist()
    assert got.timestamps_ms.tolist() == want.timestamps_ms.tolist()
    np.testing.assert_array_equal(got.values, want.values)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 4),  # 0: untouched, 1: a byte changed, 2: cut, 3: extended, 4: key
            st.integers(0, 10**6),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_poll_wide_checks_agree_with_the_one_record_explanation(damage):
    """Damaged chunks get exactly the verdict explain_chunk gives each one alone."""
    values, keys = [], []
    for k, (kind, where, byte) in enumerate(damage):
        value = bytearray(encode_chunk(f"dev-{k % 3}", TS, 10, ROWS[: 1 + k % 4]))
        key = None
        if kind == 1:
            value[3 + where % (len(value) - 3)] = byte  # keep the prefix that routes it
        elif kind == 2:
            del value[3 + where % (len(value) - 3) :]
        elif kind == 3:
            value += bytes([byte])
        elif kind == 4:
            key = bytes([byte])
        values.append(bytes(value))
        keys.append(key)
    runs = BinaryChunkDecoder(3, LIMITS).decode(JoinedValues.of(values, keys))
    expected = [
        (k, explain_chunk(v, key, 3, LIMITS))
        for k, (v, key) in enumerate(zip(values, keys, strict=True))
    ]
    assert [(k, (reason, text)) for k, reason, text in runs.rejected] == [
        (k, verdict) for k, verdict in expected if verdict
    ]
    accepted = [k for k, verdict in expected if verdict is None]
    assert runs.positions.tolist() == accepted
    for k, start in zip(accepted, np.cumsum(runs.counts) - runs.counts, strict=True):
        n = struct.unpack_from("<H", values[k], 6)[0]
        id_bytes = struct.unpack_from("<H", values[k], 24)[0]
        rows = np.frombuffer(values[k], "<f4", offset=HEADER_BYTES + id_bytes).reshape(n, 3)
        np.testing.assert_array_equal(runs.values[start : start + n], rows)


def test_huge_finite_values_survive_the_poll_wide_finite_check():
    # Their sum overflows float32, which must send the decoder to the row-by-row check only.
    rows = np.full((4, 3), 3e38, dtype=np.float32)
    batch, dead = decode(
        record(encode_chunk("d", TS, 1, rows)), record(encode_chunk("e", TS, 1, -rows))
    )
    assert dead == []
    np.testing.assert_array_equal(batch.values, np.concatenate([rows, -rows]))
