"""Decode and validate JSON sample and chunk records into columnar samples + dead letters.

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
from itertools import accumulate
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt
import orjson

from stream.decode.binary_format import MAX_TS_MS as _MAX_TS_MS
from stream.decode.binary_format import RecordLimits
from stream.decode.binary_records import run_timestamps
from stream.decode.types import DeadLetter, RawRecord, SampleBatch

_FIELDS = frozenset(("device_id", "ts", "values", "interval_ms"))
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)
_NUMERIC_KINDS = "iuf"
_JSON_TYPES = {str: "string", bool: "boolean", type(None): "null", list: "array", dict: "object"}


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
    """What one decode call gathers, per accepted record, before the columns are built."""

    index: list[int]  # record index
    devices: list[str]
    ts_ms: list[int]
    interval_ms: list[float]  # 0 for a single sample
    counts: list[int]  # samples in the record
    is_chunk: list[bool]
    rows: list[Any]  # per record: a sample's value list, or a chunk's numeric array [n, C]
    dead: list[tuple[int, DeadLetter]]

    def starts(self) -> list[int]:
        """Position of each record's first row in `rows`."""
        return list(accumulate(self.counts, initial=0))[:-1]

    def keep(self, keep: Sequence[bool]) -> None:
        """Drop the records whose flag is False, rows included."""
        for name in ("index", "devices", "ts_ms", "interval_ms", "counts", "is_chunk", "rows"):
            column = getattr(self, name)
            setattr(self, name, [item for item, ok in zip(column, keep, strict=True) if ok])


class JsonRecordDecoder:
    """Turns JSON sample and chunk records into a SampleBatch and indexed DeadLetters."""

    def __init__(self, channels: int, limits: RecordLimits) -> None:
        self.channels = channels
        self.limits = limits

    def decode(
        self,
        records: Sequence[RawRecord],
        raws: list[bytes | None],
        keys: list[bytes | None],
    ) -> tuple[SampleBatch, list[tuple[int, DeadLetter]]]:
        """Decode JSON records (their raw values and keys); dead letters come with their
        index, in record order."""
        got = _Collected([], [], [], [], [], [], [], [])
        for index, (raw, key) in enumerate(zip(raws, keys, strict=True)):
            try:
                self._decode_one(index, raw, key, got)
            except _Reject as rejected:
                letter = DeadLetter.of(records[index], rejected.reason, rejected.message)
                got.dead.append((index, letter))
        values = self._values(records, got)
        batch = _columns(got, values)
        got.dead.sort(key=lambda item: item[0])
        return batch, got.dead

    def _decode_one(
        self, index: int, raw: bytes | None, key: bytes | None, got: _Collected
    ) -> None:
        """Validate one record's structure and queue its rows; numbers are checked per poll."""
        obj = self._parse(raw)
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
        device_id = self._device_id(obj["device_id"], key)
        ts_ms = _timestamp_ms(obj["ts"])
        values = obj["values"]
        if type(values) is not list:
            _reject("wrong_type", f"values: expected an array, got {_json_type(values)}")
        if not values:
            _reject("empty_values", "values: expected at least one sample, got []")
        is_chunk = "interval_ms" in obj
        # Booleans survive numpy's dtype inference as 0/1, so look for them where they can be.
        if b"true" in raw or b"false" in raw:  # type: ignore[operator]
            _explain(values, is_chunk, self.channels)
        interval_ms: float = 0
        if is_chunk:
            interval_ms = self._chunk_shape(ts_ms, obj["interval_ms"], values)
            # Converted now, not per poll: a poll's worth of row lists kept alive makes
            # Python's cyclic GC rescan them over and over (bench: ~6x slower).
            values = self._array(values)
            if values is None:
                _explain(obj["values"], True, self.channels)
                _reject("wrong_type", "values: expected arrays of numbers only")
        else:
            self._sample_shape(values)
        got.index.append(index)
        got.devices.append(device_id)
        got.ts_ms.append(ts_ms)
        got.interval_ms.append(interval_ms)
        got.counts.append(len(values) if is_chunk else 1)
        got.is_chunk.append(is_chunk)
        got.rows.append(values)

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

    def _sample_shape(self, values: list[Any]) -> None:
        """A single sample holds exactly C entries and is not a chunk missing its interval."""
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

    def _chunk_shape(self, ts_ms: int, interval_ms: Any, values: list[Any]) -> float:
        """The chunk's interval, once it and the chunk's size and first sample are sound."""
        if type(interval_ms) is not int and type(interval_ms) is not float:
            _reject("wrong_type", f"interval_ms: expected a number, got {_json_type(interval_ms)}")
        if not 1 <= interval_ms <= _MAX_TS_MS:
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
        if ts_ms + (len(values) - 1) * interval_ms > _MAX_TS_MS:
            _reject("bad_timestamp", f"ts: the chunk's last sample falls after {_MAX_TS_MS}")
        _explain_chunk_row(values[0], 0, self.channels)
        return interval_ms

    def _values(self, records: Sequence[RawRecord], got: _Collected) -> npt.NDArray[np.float32]:
        """All samples as float32 [N, C], singles converted at once; bad ones dead-lettered."""
        singles = [k for k, chunk in enumerate(got.is_chunk) if not chunk]
        single_array = self._array([got.rows[k] for k in singles]) if singles else None
        if singles and single_array is None:
            # Rare: some sample holds a non-number. Find which, then retry without them.
            got.keep(self._explain_singles(records, got))
            return self._values(records, got)
        starts = got.starts()
        merged = np.empty((sum(got.counts), self.channels), dtype=np.float64)  # [N, C]
        if singles:
            merged[[starts[k] for k in singles]] = single_array
        for k, chunk in enumerate(got.is_chunk):
            if chunk:
                merged[starts[k] : starts[k] + got.counts[k]] = got.rows[k]
        with np.errstate(over="ignore"):  # beyond float32's range -> inf, rejected just below
            values = merged.astype(np.float32)  # [N, C]
        finite = np.isfinite(values).all(axis=1)  # [N]
        if finite.all():
            return values
        keep = [True] * len(got.index)
        owners = np.repeat(np.arange(len(got.index)), got.counts)  # [N] record of each row
        for row in np.flatnonzero(~finite).tolist():
            k = int(owners[row])
            if keep[k]:
                keep[k] = False
                column = int(np.flatnonzero(~np.isfinite(values[row]))[0])
                if got.is_chunk[k]:
                    where, bad = f"values[{row - starts[k]}][{column}]", merged[row, column]
                else:
                    where, bad = f"values[{column}]", got.rows[k][column]
                self._dead(records, got, k, "non_finite_value", _non_finite(where, float(bad)))
        rows_kept = np.repeat(np.asarray(keep), got.counts)
        got.keep(keep)
        return values[rows_kept]

    def _array(self, rows: list[Any]) -> npt.NDArray[Any] | None:
        """rows as a numeric [n, C] array, or None when they are not all C numbers."""
        try:
            array = np.array(rows)
        except ValueError:
            return None
        ok = array.ndim == 2 and array.shape[1] == self.channels
        return array if ok and array.dtype.kind in _NUMERIC_KINDS else None

    def _explain_singles(self, records: Sequence[RawRecord], got: _Collected) -> list[bool]:
        """Per record: False for single samples that are not C numbers, dead-lettered."""
        keep = []
        for k, row in enumerate(got.rows):
            try:
                if not got.is_chunk[k]:
                    _explain_row(row, "values")
                    if self._array([row]) is None:
                        _reject("wrong_type", "values: expected numbers only")
            except _Reject as rejected:
                self._dead(records, got, k, rejected.reason, rejected.message)
                keep.append(False)
                continue
            keep.append(True)
        return keep

    def _dead(
        self, records: Sequence[RawRecord], got: _Collected, k: int, reason: str, message: str
    ) -> None:
        """Dead-letter queued record k."""
        index = got.index[k]
        got.dead.append((index, DeadLetter.of(records[index], reason, message)))


def _columns(got: _Collected, values: npt.NDArray[np.float32]) -> SampleBatch:
    """The accepted records as runs, with each sample's timestamp, all in record order."""
    counts = np.asarray(got.counts, dtype=np.int64)  # [R]
    timestamps = run_timestamps(
        np.asarray(got.ts_ms, dtype=np.int64), np.asarray(got.interval_ms, np.float64), counts
    )  # [N]
    positions = np.asarray(got.index, dtype=np.int32)  # [R]
    return SampleBatch(timestamps, values, got.devices, counts, positions)


def _explain(values: list[Any], is_chunk: bool, channels: int) -> None:
    """Reject the first entry of a sample or chunk that is not a number (slow path)."""
    if is_chunk:
        for row_number, row in enumerate(values):
            _explain_chunk_row(row, row_number, channels)
    else:
        _explain_row(values, "values")


def _non_finite(where: str, value: Any) -> str:
    return f"{where}: expected a finite number within float32 range, got {_show(value)}"


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
