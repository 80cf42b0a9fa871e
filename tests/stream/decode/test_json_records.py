"""JSON records: valid samples and chunks become columns, every malformed record a reason."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.config.schema import RecordsConfig
from stream.decode.router import RecordDecoder
from stream.decode.types import DEAD_LETTER_REASONS, InputRecord
from tests.stream.polls import decode_both

TS = 1_732_280_000_123
LIMITS = RecordsConfig(max_record_bytes=4096, max_chunk_samples=50, max_device_id_length=16)


def record(value: bytes | dict | None, key: bytes | None = None, offset: int = 0) -> InputRecord:
    """An InputRecord whose value is the given bytes, or the given object as JSON."""
    raw = orjson.dumps(value) if isinstance(value, dict) else value
    return InputRecord("samples", 2, offset, TS, key, raw, [])


def decode(*records: InputRecord, channels: int = 3):
    return decode_both(RecordDecoder(channels, LIMITS), list(records))


def only_dead_letter(value, key=None):
    batch, dead = decode(record(value, key))
    assert len(batch) == 0
    assert len(dead) == 1
    return dead[0]


def test_single_sample_with_integer_ts():
    batch, dead = decode(record({"device_id": "glove-7", "ts": TS, "values": [0.1, -0.2, 9.8]}))
    assert dead == []
    assert batch.device_ids == ["glove-7"]
    assert batch.timestamps_ms.dtype == np.int64 and batch.timestamps_ms.tolist() == [TS]
    assert batch.values.dtype == np.float32 and batch.values.shape == (1, 3)
    np.testing.assert_array_equal(batch.values[0], np.array([0.1, -0.2, 9.8], dtype=np.float32))
    assert batch.record_index.dtype == np.int32 and batch.record_index.tolist() == [0]


@pytest.mark.parametrize(
    ("ts", "expected_ms"),
    [
        ("2024-11-22T12:00:00.123+00:00", 1732276800123),
        ("2024-11-22T12:00:00.123Z", 1732276800123),
        ("2024-11-22T14:00:00.123+02:00", 1732276800123),
        ("2024-11-22T12:00:00.123999Z", 1732276800123),  # sub-millisecond part truncated
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_iso_timestamps_with_offset_become_epoch_ms(ts, expected_ms):
    batch, dead = decode(record({"device_id": "d", "ts": ts, "values": [1, 2, 3]}))
    assert dead == []
    assert batch.timestamps_ms.tolist() == [expected_ms]


def test_chunk_spreads_samples_by_interval():
    values = [[i, i + 0.5, -i] for i in range(5)]
    batch, dead = decode(record({"device_id": "d", "ts": TS, "interval_ms": 10, "values": values}))
    assert dead == []
    assert batch.device_ids == ["d"] * 5
    assert batch.timestamps_ms.tolist() == [TS + 10 * i for i in range(5)]
    np.testing.assert_array_equal(batch.values, np.array(values, dtype=np.float32))
    assert batch.record_index.tolist() == [0] * 5


def test_chunk_with_fractional_interval_rounds_to_whole_ms():
    values = [[1, 2, 3]] * 4
    batch, _ = decode(record({"device_id": "d", "ts": 0, "interval_ms": 7.8125, "values": values}))
    assert batch.timestamps_ms.tolist() == [0, 8, 16, 23]


def test_chunk_with_iso_ts():
    chunk = {
        "device_id": "d",
        "ts": "1970-01-01T00:00:01Z",
        "interval_ms": 5,
        "values": [[1, 2, 3]] * 2,
    }
    batch, dead = decode(record(chunk))
    assert dead == [] and batch.timestamps_ms.tolist() == [1000, 1005]


def test_matching_key_and_no_key_are_both_accepted():
    good = {"device_id": "glove-7", "ts": TS, "values": [1, 2, 3]}
    batch, dead = decode(record(good, key=b"glove-7"), record(good, key=None))
    assert dead == [] and len(batch) == 2


def test_integers_and_floats_mix_in_values():
    batch, dead = decode(record({"device_id": "d", "ts": TS, "values": [1, 2.5, -3]}))
    assert dead == [] and batch.values.tolist() == [[1.0, 2.5, -3.0]]


def test_channel_count_follows_the_model():
    sample = {"device_id": "d", "ts": TS, "values": [1, 2, 3, 4, 5]}
    batch, dead = decode(record(sample), channels=5)
    assert dead == [] and batch.values.shape == (1, 5)
    _, dead = decode(record(sample), channels=3)
    assert [d.reason for d in dead] == ["wrong_channel_count"]


def test_mixed_poll_keeps_good_samples_in_record_order_with_record_index():
    records = [
        record({"device_id": "a", "ts": 1, "values": [1, 1, 1]}, offset=10),
        record(b"{broken", offset=11),
        record(
            {"device_id": "b", "ts": 2, "interval_ms": 1, "values": [[2, 2, 2], [3, 3, 3]]},
            offset=12,
        ),
        record({"device_id": "c", "ts": 3, "values": [4, 4, True]}, offset=13),
        record({"device_id": "c", "ts": 4, "values": [5, 5, 5]}, offset=14),
        record({"device_id": "d", "ts": 5, "values": [6, 6, 1e39]}, offset=15),
        record({"device_id": "e", "ts": 6, "interval_ms": 2, "values": [[7, 7, 7]]}, offset=16),
        record({"device_id": "f", "ts": 7, "values": [8, 8, "8"]}, offset=17),
        record({"device_id": "a", "ts": 8, "values": [9, 9, 9]}, offset=18),
    ]
    batch, dead = decode(*records)
    assert batch.device_ids == ["a", "b", "b", "c", "e", "a"]
    assert batch.timestamps_ms.tolist() == [1, 2, 3, 4, 6, 8]
    assert batch.values[:, 0].tolist() == [1, 2, 3, 5, 7, 9]
    assert batch.record_index.tolist() == [0, 2, 2, 4, 6, 8]
    assert [(d.record.offset, d.reason) for d in dead] == [
        (11, "invalid_json"),
        (13, "wrong_type"),
        (15, "non_finite_value"),
        (17, "wrong_type"),
    ]


def test_dead_letter_keeps_the_original_record():
    original = record(b'{"device_id": "d"}', key=b"d", offset=42)
    _, dead = decode(original)
    assert dead[0].record is original


GOOD = {"device_id": "d", "ts": TS, "values": [1, 2, 3]}
CHUNK = {"device_id": "d", "ts": TS, "interval_ms": 10, "values": [[1, 2, 3], [4, 5, 6]]}

MALFORMED = [
    # (value or JSON object, key, reason, exact message)
    (b"\xff\xfe{}", None, "invalid_utf8", "the value is not UTF-8: invalid start byte at byte 0"),
    (None, None, "invalid_json", "the record has no value (a tombstone); expected a JSON object"),
    (b"", None, "invalid_json", None),
    (b'{"device_id": "d",', None, "invalid_json", None),
    (b"[1, 2, 3]", None, "not_an_object", "expected a JSON object, got array"),
    (b'"text"', None, "not_an_object", "expected a JSON object, got string"),
    (
        {"device_id": "d", "values": [1, 2, 3]},
        None,
        "missing_field",
        "missing ts; a record needs device_id, ts, values",
    ),
    (
        {"ts": TS},
        None,
        "missing_field",
        "missing device_id, values; a record needs device_id, ts, values",
    ),
    (
        {**GOOD, "device_id": ""},
        None,
        "missing_field",
        'device_id: expected a non-empty string, got ""',
    ),
    (
        {**GOOD, "values": [[1, 2, 3]] * 3},
        None,
        "missing_field",
        "interval_ms: required when values is an array of samples (a chunk)",
    ),
    (
        {**GOOD, "temp": 3},
        None,
        "unknown_field",
        "unknown field temp; allowed: device_id, ts, values, interval_ms",
    ),
    ({**GOOD, "device_id": 7}, None, "wrong_type", "device_id: expected a string, got number"),
    ({**GOOD, "values": {"x": 1}}, None, "wrong_type", "values: expected an array, got object"),
    (
        {**GOOD, "values": [1, True, 3]},
        None,
        "wrong_type",
        "values[1]: expected a number, got boolean",
    ),
    (
        {**GOOD, "values": [1, 2, None]},
        None,
        "wrong_type",
        "values[2]: expected a number, got null",
    ),
    (
        {**GOOD, "values": ["1", 2, 3]},
        None,
        "wrong_type",
        "values[0]: expected a number, got string",
    ),
    ({**GOOD, "ts": 1.5e12}, None, "wrong_type", None),
    ({**GOOD, "ts": True}, None, "wrong_type", None),
    (
        {**CHUNK, "interval_ms": "10"},
        None,
        "wrong_type",
        "interval_ms: expected a number, got string",
    ),
    (
        {**CHUNK, "values": [[1, 2, 3], 4]},
        None,
        "wrong_type",
        "values[1]: expected an array of 3 numbers, got number",
    ),
    (
        {**CHUNK, "values": [[1, 2, 3], [4, False, 6]]},
        None,
        "wrong_type",
        "values[1][1]: expected a number, got boolean",
    ),
    (
        {**CHUNK, "values": [[1, 2, 3], [4, "5", 6]]},
        None,
        "wrong_type",
        "values[1][1]: expected a number, got string",
    ),
    (
        {**GOOD, "values": [1, 2]},
        None,
        "wrong_channel_count",
        "values: expected 3 numbers (the model's channels), got 2",
    ),
    (
        {**CHUNK, "values": [[1, 2, 3], [1, 2]]},
        None,
        "wrong_channel_count",
        "values[1]: expected 3 numbers (the model's channels), got 2",
    ),
    (
        {**CHUNK, "values": [[1, 2, 3, 4], [1, 2, 3, 4]]},
        None,
        "wrong_channel_count",
        "values[0]: expected 3 numbers (the model's channels), got 4",
    ),
    (
        {**GOOD, "values": [1, 2, 1e39]},
        None,
        "non_finite_value",
        "values[2]: expected a finite number within float32 range, got 1e+39",
    ),
    (
        {**CHUNK, "values": [[1, 2, 3], [-1e39, 2, 3]]},
        None,
        "non_finite_value",
        "values[1][0]: expected a finite number within float32 range, got -1e+39",
    ),
    (b'{"device_id": "d", "ts": 1, "values": [1, NaN, 3]}', None, "non_finite_value", None),
    (b'{"device_id": "d", "ts": 1, "values": [1, 2, Infinity]}', None, "non_finite_value", None),
    (b'{"device_id": "d", "ts": 1, "values": [1, 2, 1e400]}', None, "non_finite_value", None),
    (b'{"device_id": "d", "ts": 1, "values": [' + b"1" * 5000 + b"]}", None, "too_large", None),
    ({**GOOD, "device_id": "x" * 17}, None, "too_large", None),
    ({**CHUNK, "values": [[1, 2, 3]] * 51}, None, "too_large", None),
    ({**GOOD, "ts": "2024-11-22T12:00:00"}, None, "bad_timestamp", None),
    ({**GOOD, "ts": "yesterday"}, None, "bad_timestamp", None),
    ({**GOOD, "ts": -5}, None, "bad_timestamp", None),
    ({**GOOD, "ts": "1969-12-31T23:59:59Z"}, None, "bad_timestamp", None),
    ({**GOOD, "ts": 10**17}, None, "bad_timestamp", None),
    (
        {**CHUNK, "interval_ms": 0},
        None,
        "bad_interval",
        "interval_ms: expected a number of milliseconds >= 1, got 0",
    ),
    ({**CHUNK, "interval_ms": -10}, None, "bad_interval", None),
    ({**CHUNK, "interval_ms": 0.5}, None, "bad_interval", None),
    ({**GOOD, "values": []}, None, "empty_values", "values: expected at least one sample, got []"),
    ({**CHUNK, "values": []}, None, "empty_values", None),
    (GOOD, b"other", "key_mismatch", "the key b'other' differs from device_id 'd'"),
    (GOOD, b"", "key_mismatch", None),
]


@pytest.mark.parametrize(("value", "key", "reason", "message"), MALFORMED)
def test_malformed_record_gets_its_reason_and_a_precise_message(value, key, reason, message):
    letter = only_dead_letter(value, key)
    assert (letter.reason, letter.message if message else None) == (reason, message)
    assert letter.message and "\n" not in letter.message


def test_every_input_reason_is_exercised_and_documented():
    exercised = {reason for _, _, reason, _ in MALFORMED}
    worker_only = {"late_sample", "duplicate_sample"}
    binary_only = {"malformed_binary"}  # exercised in test_binary_records.py
    assert exercised | worker_only | binary_only == set(DEAD_LETTER_REASONS)
    assert len(DEAD_LETTER_REASONS) == len(set(DEAD_LETTER_REASONS))


def test_orjson_rejects_nan_and_overflow_so_the_decoder_explains_them():
    # The decoder's non_finite_value for these relies on orjson refusing them.
    for text in (b"[NaN]", b"[1e400]"):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)


def test_messages_do_not_grow_with_the_bad_value():
    letter = only_dead_letter({**GOOD, "ts": "x" * 2000})
    assert letter.reason == "bad_timestamp" and len(letter.message) < 200


def test_device_id_containing_true_still_decodes_fast_path_values():
    batch, dead = decode(record({"device_id": "true-false", "ts": 1, "values": [1, 2, 3]}))
    assert dead == [] and batch.values.tolist() == [[1, 2, 3]]


def test_input_record_from_a_consumer_record_like_object():
    class Consumed:
        topic, partition, offset, timestamp = "t", 1, 5, 99
        key, value, headers = b"k", b"v", [("h", b"1")]

    assert InputRecord.from_consumer_record(Consumed()) == InputRecord(
        "t", 1, 5, 99, b"k", b"v", [("h", b"1")]
    )


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(
    st.lists(
        st.tuples(
            st.booleans(), st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=5)
        ),
        max_size=12,
    )
)
def test_decoded_columns_match_a_naive_reading_of_the_json(records_spec):
    """Any mix of sample and chunk records decodes to the naive per-value expansion."""
    records, expected = [], []
    for index, (as_chunk, rows) in enumerate(records_spec):
        if as_chunk:
            obj = {"device_id": f"d{index}", "ts": index * 1000, "interval_ms": 3, "values": rows}
            expected += [
                (f"d{index}", index * 1000 + 3 * i, row, index) for i, row in enumerate(rows)
            ]
        else:
            obj = {"device_id": f"d{index}", "ts": index * 1000, "values": rows[0]}
            expected.append((f"d{index}", index * 1000, rows[0], index))
        records.append(record(json.loads(json.dumps(obj)), offset=index))
    batch, dead = decode(*records)
    assert dead == []
    assert batch.device_ids == [e[0] for e in expected]
    assert batch.timestamps_ms.tolist() == [e[1] for e in expected]
    assert batch.record_index.tolist() == [e[3] for e in expected]
    np.testing.assert_array_equal(
        batch.values, np.array([e[2] for e in expected], dtype=np.float32).reshape(-1, 3)
    )


def test_iso_timestamp_agrees_with_datetime():
    moment = datetime(2031, 5, 6, 7, 8, 9, 345000, tzinfo=timezone.utc)
    batch, _ = decode(record({**GOOD, "ts": moment.isoformat()}))
    assert batch.timestamps_ms.tolist() == [int(moment.timestamp() * 1000)]
