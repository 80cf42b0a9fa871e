"""What the decoders take and give: raw records, decoded samples, dead letters and reasons."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from stream.decode.binary_records import BinaryRuns

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
    "malformed_binary",  # a binary chunk of another version, flags != 0, or the wrong length
    "late_sample",  # dead-lettered by the window late policy
    "duplicate_sample",  # dead-lettered by the window late policy
)


class RawRecord(Protocol):
    """What the decoder reads of a record: an InputRecord or kafka-python's ConsumerRecord."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One consumed Kafka record with the fields a dead letter reports."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]  # a Kafka header's value may be null

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
    """N decoded samples of R records in record order: per-sample columns and per-record runs.

    Each decoded record is one run of consecutive samples. The per-sample device_ids and
    record_index are built on first use, so a caller that appends runs never pays for N
    Python strings.
    """

    timestamps_ms: npt.NDArray[np.int64]  # [N]
    values: npt.NDArray[np.float32]  # [N, C]
    record_devices: list[str]  # [R] device id of each decoded record
    record_counts: npt.NDArray[np.int64]  # [R] samples in each decoded record (>= 1)
    record_positions: npt.NDArray[np.int32]  # [R] each decoded record's index in the poll

    def __len__(self) -> int:
        """The number of samples N."""
        return len(self.timestamps_ms)

    @cached_property
    def device_ids(self) -> list[str]:
        """[N] the device id of each sample."""
        if len(self.record_devices) == len(self.timestamps_ms):
            return list(self.record_devices)
        devices = np.asarray(self.record_devices, dtype=object)
        return np.repeat(devices, self.record_counts).tolist()

    @cached_property
    def record_index(self) -> npt.NDArray[np.int32]:
        """[N] the poll index of each sample's record."""
        return np.repeat(self.record_positions, self.record_counts)

    @classmethod
    def from_samples(
        cls,
        device_ids: list[str],
        timestamps_ms: npt.NDArray[np.int64],
        values: npt.NDArray[np.float32],
        record_index: npt.NDArray[np.int32],
    ) -> SampleBatch:
        """A batch from per-sample columns; consecutive samples of one record form its run."""
        record_index = np.asarray(record_index, dtype=np.int32)  # [N]
        firsts = np.flatnonzero(np.diff(record_index, prepend=-1))  # [R] first sample of a run
        counts = np.diff(firsts, append=len(record_index)).astype(np.int64)
        devices = [device_ids[k] for k in firsts.tolist()]
        batch = cls(timestamps_ms, values, devices, counts, record_index[firsts])
        batch.__dict__["device_ids"] = list(device_ids)  # already built: seed the cache
        return batch

    @classmethod
    def from_runs(cls, runs: BinaryRuns, positions: npt.NDArray[Any]) -> SampleBatch:
        """A batch from decoded binary runs; `positions` maps their input index to the poll's."""
        record_positions = positions[runs.positions].astype(np.int32)
        return cls(runs.timestamps_ms, runs.values, runs.devices, runs.counts, record_positions)

    @staticmethod
    def merge(first: SampleBatch, second: SampleBatch) -> SampleBatch:
        """Both batches' records interleaved back into poll order (by record_positions)."""
        positions = np.concatenate([first.record_positions, second.record_positions])  # [R]
        order = np.argsort(positions, kind="stable")
        counts = np.concatenate([first.record_counts, second.record_counts])  # [R]
        old_starts = np.cumsum(counts) - counts
        new_counts = counts[order]
        new_starts = np.cumsum(new_counts) - new_counts
        total = int(counts.sum())
        take = np.repeat(old_starts[order] - new_starts, new_counts) + np.arange(total)  # [N]
        devices = first.record_devices + second.record_devices
        return SampleBatch(
            np.concatenate([first.timestamps_ms, second.timestamps_ms])[take],
            np.concatenate([first.values, second.values])[take],
            [devices[k] for k in order.tolist()],
            new_counts,
            positions[order],
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected record, a reason from DEAD_LETTER_REASONS and a message saying what was wrong."""

    record: InputRecord
    reason: str
    message: str

    def __post_init__(self) -> None:
        # The decoder takes any RawRecord (kafka-python's records too, for callers outside
        # the worker); a dead letter keeps its own copy of the fields it reports.
        if not isinstance(self.record, InputRecord):
            object.__setattr__(self, "record", InputRecord.from_consumer_record(self.record))

    @classmethod
    def of(cls, record: RawRecord, reason: str, message: str) -> DeadLetter:
        """The dead letter of any record a decoder takes (kafka-python's records are copied)."""
        if isinstance(record, InputRecord):
            return cls(record, reason, message)
        return cls(InputRecord.from_consumer_record(record), reason, message)
