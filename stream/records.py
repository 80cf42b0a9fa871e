"""Decode and validate a poll's worth of input records into columnar samples + dead letters.

Wire formats (JSON, UTF-8, Kafka key = device id or absent):

* sample: ``{"device_id": "glove-7", "ts": 1732280000123, "values": [0.1, -0.2, 9.8]}``
* chunk:  ``{"device_id": ..., "ts": ..., "interval_ms": 10, "values": [[...], ...]}``,
  sample i at ``ts + i * interval_ms`` (rounded to whole milliseconds).

``ts`` is epoch milliseconds (an integer) or an ISO-8601 string with an offset.
Validation is hand-written on top of orjson: bench/decode_bench.py measures it
against a pydantic validator on the same records. Numbers are checked a whole
array at a time (numpy infers the dtype, then one isfinite over float32); the
Python-level, value-by-value explanation runs only for records already known bad.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn, Protocol

import numpy as np
import numpy.typing as npt
import orjson

DEAD_LETTER_REASONS: tuple[str, ...] = (
    "invalid_utf8",  # the value is not UTF-8
    "invalid_json",  # not JSON, or no value at all (a tombstone)
    "not_an_object",  # JSON, but not an object
    "missing_field",  # device_id, ts or values absent (or device_id empty)
    "unknown_field",  # a field other than device_id, ts, values, interval_ms
    "wrong_type",  # a field or a value of the wrong JSON type (booleans are not numbers)
    "wrong_channel_count",  # a sample with other than the model's channel count
    "non_finite_value",  # NaN, Infinity, or a number outside float32's range
    "too_large",  # record bytes, chunk samples or device id length over the [records] bounds
    "bad_timestamp",  # ts out of range, unparseable, or an ISO string without offset
    "bad_interval",  # interval_ms not a number >= 1
    "empty_values",  # values is []
    "key_mismatch",  # the Kafka key is present and differs from device_id
    "late_sample",  # dead-lettered by the window late policy
    "duplicate_sample",  # dead-lettered by the window late policy
)

_FIELDS = frozenset(("device_id", "ts", "values", "interval_ms"))
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)
_MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: keeps ts + offsets inside int64
_NUMERIC_KINDS = "iuf"
_JSON_TYPES = {str: "string", bool: "boolean", type(None): "null", list: "array", dict: "object"}


class RecordLimits(Protocol):
    """The bounds a decoder enforces (stream.config.RecordsConfig satisfies it)."""

    max_record_bytes: int
    max_chunk_samples: int
    max_device_id_length: int


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One consumed Kafka record, as the worker hands it to the decoder."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @classmethod
    def from_consumer_record(cls, record: Any) -> InputRecord:
        """Copy the fields of a kafka-python ConsumerRecord (duck-typed, no Kafka import)."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=record.key,
            value=record.value,
            headers=list(record.headers or ()),
        )


@dataclass(frozen=True)
class SampleBatch:
    """N decoded samples in record order, columnar."""

    device_ids: list[str]  # [N]
    timestamps_ms: npt.NDArray[np.int64]  # [N]
    values: npt.NDArray[np.float32]  # [N, C]
    record_index: npt.NDArray[np.int32]  # [N], index into the decoded record list

    def __len__(self) -> int:
        """The number of samples N."""
        return len(self.device_ids)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected record, a reason from DEAD_LETTER_REASONS and a message saying what was wrong."""

    record: InputRecord
    reason: str
    message: str


class _Reject(Exception):
    """Raised inside the decoder to turn the current record into a dead letter."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _reject(reason: str, message: str) -> NoReturn:
    raise _Reject(reason, message)


def _show(value: Any, limit: int = 60) -> str:
    """A short repr for messages, so a huge bad value cannot bloat the dead-letter header."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "number")


@dataclass(slots=True)
class _Collected:
    """What one decode call gathers before the columns are built."""

    single_index: list[int]
    single_devices: list[str]
    single_ts: list[int]
    single_values: list[list[Any]]
    chunk_index: list[int]
    chunk_devices: list[str]
    chunk_ts: list[npt.NDArray[np.int64]]
    chunk_values: list[npt.NDArray[np.float32]]
    dead: list[tuple[int, DeadLetter]]


class RecordDecoder:
    """Turns InputRecords into a SampleBatch of C-channel samples and a list of DeadLetters."""

    def __init__(self, channels: int, limits: RecordLimits) -> None:
        self.channels = channels
        self.limits = limits

    def decode(self, records: Sequence[InputRecord]) -> tuple[SampleBatch, list[DeadLetter]]:
        """Decode one poll; samples keep record order, dead letters are in record order too."""
        got = _Collected([], [], [], [], [], [], [], [], [])
        for index, record in enumerate(records):
            try:
                self._decode_one(index, record, got)
            except _Reject as rejected:
                got.dead.append((index, DeadLetter(record, rejected.reason, rejected.message)))
        singles = self._convert_singles(records, got)
        batch = _assemble(got, singles, self.channels)
        got.dead.sort(key=lambda item: item[0])
        return batch, [letter for _, letter in got.dead]

    def _decode_one(self, index: int, record: InputRecord, got: _Collected) -> None:
        """Validate one record and append it to the singles or the chunks of `got`."""
        obj = self._parse(record.value)
        missing = [name for name in ("device_id", "ts", "values") if name not in obj]
        if missing:
            _reject(
                "missing_field",
                f"missing {', '.join(missing)}; a record needs device_id, ts, values",
            )
        if len(obj) > 3 and obj.keys() - _FIELDS:
            unknown = ", ".join(sorted(obj.keys() - _FIELDS))
            _reject(
                "unknown_field",
                f"unknown field {unknown}; allowed: device_id, ts, values, interval_ms",
            )
        device_id = self._device_id(obj["device_id"], record.key)
        ts_ms = _timestamp_ms(obj["ts"])
        values = obj["values"]
        if type(values) is not list:
            _reject("wrong_type", f"values: expected an array, got {_json_type(values)}")
        if not values:
            _reject("empty_values", "values: expected at least one sample, got []")
        # Booleans survive numpy's dtype inference as 0/1, so look for them where they can be.
        may_hold_bool = b"true" in record.value or b"false" in record.value  # type: ignore[operator]
        if "interval_ms" in obj:
            timestamps, array = self._chunk(ts_ms, obj["interval_ms"], values, may_hold_bool)
            got.chunk_index.append(index)
            got.chunk_devices.append(device_id)
            got.chunk_ts.append(timestamps)
            got.chunk_values.append(array)
            return
        if type(values[0]) is list:
            _reject(
                "missing_field",
                "interval_ms: required when values is an array of samples (a chunk)",
            )
        if len(values) != self.channels:
            _reject(
                "wrong_channel_count",
                f"values: expected {self.channels} numbers (the model's channels), "
                f"got {len(values)}",
            )
        if may_hold_bool:
            _explain_row(values, "values")
        got.single_index.append(index)
        got.single_devices.append(device_id)
        got.single_ts.append(ts_ms)
        got.single_values.append(values)

    def _parse(self, value: bytes | None) -> dict[str, Any]:
        """The record's JSON object, or a rejection saying why there is none."""
        if value is None:
            _reject("invalid_json", "the record has no value (a tombstone); expected a JSON object")
        if len(value) > self.limits.max_record_bytes:
            _reject(
                "too_large",
                f"the value is {len(value)} bytes; at most {self.limits.max_record_bytes} "
                "(records.max_record_bytes)",
            )
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            _explain_bad_json(value, exc)
        if type(obj) is not dict:
            _reject("not_an_object", f"expected a JSON object, got {_json_type(obj)}")
        return obj

    def _device_id(self, device_id: Any, key: bytes | None) -> str:
        """The validated device id; a present key must spell the same id."""
        if type(device_id) is not str:
            _reject("wrong_type", f"device_id: expected a string, got {_json_type(device_id)}")
        if not device_id:
            _reject("missing_field", 'device_id: expected a non-empty string, got ""')
        if len(device_id) > self.limits.max_device_id_length:
            _reject(
                "too_large",
                f"device_id: {len(device_id)} characters; at most "
                f"{self.limits.max_device_id_length} (records.max_device_id_length)",
            )
        if key is not None and key != device_id.encode("utf-8"):
            _reject(
                "key_mismatch", f"the key {_show(key)} differs from device_id {_show(device_id)}"
            )
        return device_id

    def _chunk(
        self, ts_ms: int, interval_ms: Any, values: list[Any], may_hold_bool: bool
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Timestamps [n] and values [n, C] of a chunk record, checked as whole arrays."""
        if type(interval_ms) is not int and type(interval_ms) is not float:
            _reject("wrong_type", f"interval_ms: expected a number, got {_json_type(interval_ms)}")
        if not interval_ms >= 1 or interval_ms == float("inf"):
            _reject(
                "bad_interval",
                f"interval_ms: expected a number of milliseconds >= 1, got {_show(interval_ms)}",
            )
        if len(values) > self.limits.max_chunk_samples:
            _reject(
                "too_large",
                f"values: {len(values)} samples in one chunk; at most "
                f"{self.limits.max_chunk_samples} (records.max_chunk_samples)",
            )
        try:
            array = np.array(values)  # [n, C] when well formed
        except ValueError:
            array = None
        if (
            array is None
            or array.ndim != 2
            or array.dtype.kind not in _NUMERIC_KINDS
            or may_hold_bool
        ):
            for row_number, row in enumerate(values):
                _explain_chunk_row(row, row_number, self.channels)
        if array is None or array.ndim != 2 or array.dtype.kind not in _NUMERIC_KINDS:
            _reject("wrong_type", "values: expected an array of samples, each an array of numbers")
        if array.shape[1] != self.channels:
            _reject(
                "wrong_channel_count",
                f"values: every sample has {array.shape[1]} numbers; expected {self.channels} "
                "(the model's channels)",
            )
        values_f32 = _to_float32(array)
        bad = ~np.isfinite(values_f32)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            _reject_non_finite(f"values[{row}][{column}]", values[row][column])
        steps = np.arange(len(values), dtype=np.int64)
        if type(interval_ms) is int:
            offsets = steps * interval_ms
        else:
            offsets = np.rint(steps * interval_ms).astype(np.int64)
        return ts_ms + offsets, values_f32

    def _convert_singles(
        self, records: Sequence[InputRecord], got: _Collected
    ) -> npt.NDArray[np.float32]:
        """All single samples [S, C] in one conversion; bad ones become dead letters."""
        if not got.single_values:
            return np.empty((0, self.channels), dtype=np.float32)
        try:
            array = np.array(got.single_values)  # [S, C]
        except ValueError:
            array = None
        if array is None or array.ndim != 2 or array.dtype.kind not in _NUMERIC_KINDS:
            # Rare: some sample holds a non-number. Find which, drop them, convert the rest.
            keep = [self._single_ok(records, got, k) for k in range(len(got.single_values))]
            _keep_singles(got, keep)
            if not got.single_values:
                return np.empty((0, self.channels), dtype=np.float32)
            array = np.array(got.single_values)
        values_f32 = _to_float32(array)
        finite = np.isfinite(values_f32).all(axis=1)
        if not finite.all():
            for k in np.flatnonzero(~finite).tolist():
                column = int(np.flatnonzero(~np.isfinite(values_f32[k]))[0])
                self._single_ok(records, got, k, column)
            _keep_singles(got, finite.tolist())
            values_f32 = values_f32[finite]
        return values_f32

    def _single_ok(
        self, records: Sequence[InputRecord], got: _Collected, k: int, bad_column: int = -1
    ) -> bool:
        """Whether single sample k is valid; if not, record its dead letter."""
        index = got.single_index[k]
        try:
            _explain_row(got.single_values[k], "values")
            if bad_column >= 0:
                _reject_non_finite(f"values[{bad_column}]", got.single_values[k][bad_column])
        except _Reject as rejected:
            got.dead.append((index, DeadLetter(records[index], rejected.reason, rejected.message)))
            return False
        return True


def _keep_singles(got: _Collected, keep: list[bool]) -> None:
    """Drop the single samples whose flag is False, keeping the lists aligned."""
    for name in ("single_index", "single_devices", "single_ts", "single_values"):
        column = getattr(got, name)
        setattr(got, name, [item for item, ok in zip(column, keep, strict=True) if ok])


def _to_float32(array: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """float32 copy; values beyond float32's range become inf and are rejected right after."""
    with np.errstate(over="ignore"):
        return array.astype(np.float32)


def _reject_non_finite(where: str, value: Any) -> NoReturn:
    _reject(
        "non_finite_value",
        f"{where}: expected a finite number within float32 range, got {_show(value)}",
    )


def _explain_row(row: list[Any], where: str) -> None:
    """Reject the first element of a sample that is not a number."""
    for column, item in enumerate(row):
        kind = type(item)
        if kind is not int and kind is not float:
            _reject("wrong_type", f"{where}[{column}]: expected a number, got {_json_type(item)}")


def _explain_chunk_row(row: Any, row_number: int, channels: int) -> None:
    """Reject a chunk's sample that is not an array of `channels` numbers."""
    where = f"values[{row_number}]"
    if type(row) is not list:
        _reject(
            "wrong_type", f"{where}: expected an array of {channels} numbers, got {_json_type(row)}"
        )
    if len(row) != channels:
        _reject(
            "wrong_channel_count",
            f"{where}: expected {channels} numbers (the model's channels), got {len(row)}",
        )
    _explain_row(row, where)


def _explain_bad_json(value: bytes, exc: orjson.JSONDecodeError) -> NoReturn:
    """Reject bytes orjson refused: not UTF-8, NaN/Infinity/overflow, or plain bad JSON."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as bad:
        _reject("invalid_utf8", f"the value is not UTF-8: {bad.reason} at byte {bad.start}")
    # Producers such as Python's json.dumps write NaN and Infinity; say so precisely.
    constants: list[str] = []

    def non_finite(text: str) -> float:
        constants.append(text)
        return float(text)

    try:
        json.loads(
            value,
            parse_constant=non_finite,
            parse_float=lambda text: _float_or_note(text, constants),
        )
    except (ValueError, RecursionError):
        constants.clear()
    if constants:
        _reject(
            "non_finite_value",
            f"the record holds {_show(constants[0])}; expected finite numbers "
            "(NaN and Infinity are not JSON, and numbers must fit a float)",
        )
    _reject("invalid_json", f"not valid JSON: {exc}")


def _float_or_note(text: str, constants: list[str]) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        constants.append(text)
    return number


def _timestamp_ms(ts: Any) -> int:
    """Epoch milliseconds from an integer or an ISO-8601 string with an offset."""
    if type(ts) is int:
        if not 0 <= ts <= _MAX_TS_MS:
            _reject(
                "bad_timestamp", f"ts: expected epoch milliseconds in [0, {_MAX_TS_MS}], got {ts}"
            )
        return ts
    if type(ts) is not str:
        _reject(
            "wrong_type",
            f"ts: expected epoch milliseconds (integer) or an ISO-8601 string with offset, "
            f"got {_json_type(ts)} {_show(ts)}",
        )
    text = ts[:-1] + "+00:00" if ts.endswith(("Z", "z")) else ts  # Python 3.10 lacks "Z"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _reject(
            "bad_timestamp",
            f"ts: expected ISO-8601 like 2024-11-22T12:00:00.123+00:00, got {_show(ts)}",
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        _reject(
            "bad_timestamp",
            f"ts: the ISO-8601 time has no offset (add Z or +HH:MM), got {_show(ts)}",
        )
    timestamp_ms = (moment - _EPOCH) // _ONE_MS
    if not 0 <= timestamp_ms <= _MAX_TS_MS:
        _reject("bad_timestamp", f"ts: expected a time from 1970 on, got {_show(ts)}")
    return timestamp_ms


def _assemble(got: _Collected, singles: npt.NDArray[np.float32], channels: int) -> SampleBatch:
    """Concatenate singles and chunks, then restore record order if they interleave."""
    counts = [len(ts) for ts in got.chunk_ts]
    index = np.concatenate(
        [np.asarray(got.single_index, dtype=np.int32)]
        + [np.full(n, i, dtype=np.int32) for i, n in zip(got.chunk_index, counts, strict=True)]
    )  # [N]
    timestamps = np.concatenate([np.asarray(got.single_ts, dtype=np.int64), *got.chunk_ts])  # [N]
    values = np.concatenate([singles.reshape(-1, channels), *got.chunk_values])  # [N, C]
    devices = list(got.single_devices)
    for device_id, n in zip(got.chunk_devices, counts, strict=True):
        devices.extend([device_id] * n)
    if len(index) > 1 and got.single_index and got.chunk_index and (np.diff(index) < 0).any():
        order = np.argsort(index, kind="stable")
        index, timestamps, values = index[order], timestamps[order], values[order]
        devices = np.asarray(devices, dtype=object)[order].tolist()
    return SampleBatch(devices, timestamps, values, index)
