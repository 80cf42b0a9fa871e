"""The poll-wide decoder of binary chunk records (format: stream/binary_format.py).

Every record of a poll is checked at once with numpy masks over one joined buffer;
only records already known bad are explained one by one (stream/binary_explain.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from stream.binary_explain import explain_chunk
from stream.binary_format import (
    HEADER_BYTES,
    HEADER_DTYPE,
    MAX_TS_MS,
    PREFIX,
    VERSION,
    RecordLimits,
)


@dataclass(frozen=True, slots=True)
class JoinedValues:
    """A poll's record values as one byte buffer; a None value counts as zero bytes."""

    buffer: npt.NDArray[np.uint8]  # [total bytes]
    starts: npt.NDArray[np.int64]  # [R] first byte of each record
    lengths: npt.NDArray[np.int64]  # [R]

    @classmethod
    def of(cls, values: Sequence[bytes | None]) -> JoinedValues:
        """Join the values (one copy) and note where each starts."""
        try:
            blob = b"".join(values)  # type: ignore[arg-type]
            lengths = np.fromiter(map(len, values), np.int64, len(values))  # type: ignore[arg-type]
        except TypeError:  # a tombstone among them
            present = [value or b"" for value in values]
            blob = b"".join(present)
            lengths = np.fromiter(map(len, present), np.int64, len(present))
        starts = np.cumsum(lengths) - lengths
        return cls(np.frombuffer(blob, np.uint8), starts, lengths)

    def binary_mask(self) -> npt.NDArray[np.bool_]:
        """[R] True for the records that start with the binary prefix."""
        mask = self.lengths >= len(PREFIX)
        where = self.starts[mask]
        hits = np.ones(len(where), dtype=bool)
        for k, byte in enumerate(PREFIX):
            hits &= self.buffer[where + k] == byte
        mask[mask] = hits
        return mask

    def headers(self) -> npt.NDArray[np.void]:
        """[R] header fields; zeros for records too short to hold a header."""
        whole = self.lengths >= HEADER_BYTES
        if whole.all():
            head = sliding_window_view(self.buffer, HEADER_BYTES)[self.starts]  # [R, 26]
        else:
            head = np.zeros((len(self.starts), HEADER_BYTES), dtype=np.uint8)
            if whole.any():
                head[whole] = sliding_window_view(self.buffer, HEADER_BYTES)[self.starts[whole]]
        return head.view(HEADER_DTYPE)[:, 0]


@dataclass(frozen=True, slots=True)
class BinaryRuns:
    """A poll's binary chunks decoded: accepted records as runs of samples, plus rejections."""

    positions: npt.NDArray[np.int64]  # [R'] index of each accepted record in the input
    devices: list[str]  # [R'] device id of each accepted record
    counts: npt.NDArray[np.int64]  # [R'] samples in each accepted record
    timestamps_ms: npt.NDArray[np.int64]  # [N]
    values: npt.NDArray[np.float32]  # [N, C]
    rejected: list[tuple[int, str, str]]  # (input index, reason, message), in input order


class BinaryChunkDecoder:
    """Decodes a poll of SSB1 records into runs with numpy, explaining only the bad records."""

    def __init__(self, channels: int, limits: RecordLimits) -> None:
        self.channels = channels
        self.limits = limits

    def decode(
        self,
        values: Sequence[bytes],
        keys: Sequence[bytes | None],
        joined: JoinedValues | None = None,
    ) -> BinaryRuns:
        """Decode records that all start with PREFIX; `joined` is JoinedValues.of(values)."""
        joined = JoinedValues.of(values) if joined is None else joined
        head = joined.headers()  # [R]
        bad = self._header_flags(head, joined.lengths)  # [R]
        raw_ids = _raw_ids(values, head)
        devices, bad_ids = self._devices(raw_ids, keys)
        if bad_ids is not None:
            bad |= bad_ids
        good = np.flatnonzero(~bad)
        counts = head["count"][good].astype(np.int64)  # [R']
        samples = self._payload(values, joined, head, good)  # [N, C]
        # A NaN or an infinity makes the sum non-finite, and summing needs no [N, C] temporary
        # (a fresh 0.6 MB per poll costs page faults); a row-wise isfinite().all() over 3
        # columns would cost ~40x more. Only when the sum is not finite (or huge finite values
        # overflowed it) are the rows looked at.
        if not np.isfinite(samples.sum()):
            finite = np.isfinite(samples).all(axis=1)  # [N]
            record_finite = np.logical_and.reduceat(finite, np.cumsum(counts) - counts)
            bad[good[~record_finite]] = True
            samples = samples[np.repeat(record_finite, counts)]
            good, counts = good[record_finite], counts[record_finite]
        timestamps = run_timestamps(head["ts_ms"][good], head["interval_ms"][good], counts)
        # Every accepted record's id decoded, so no None is left among these.
        accepted = [devices[k] for k in good.tolist()] if bad.any() else devices
        return BinaryRuns(
            positions=good,
            devices=cast("list[str]", accepted),
            counts=counts,
            timestamps_ms=timestamps,
            values=samples,
            rejected=self._rejections(values, keys, np.flatnonzero(bad).tolist()),
        )

    def _header_flags(
        self, head: npt.NDArray[np.void], lengths: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        """[R] True where a header field or the record length breaks a rule."""
        limits = self.limits
        counts = head["count"].astype(np.int64)
        ids = head["id_bytes"].astype(np.int64)
        ts = head["ts_ms"]
        interval = head["interval_ms"]
        size = HEADER_BYTES + ids + 4 * counts * head["channels"]
        with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf intervals are flagged
            last_ms = ts.astype(np.float64) + (counts - 1) * interval
            return (
                (lengths > limits.max_record_bytes)
                | (lengths < HEADER_BYTES)
                | (head["version"] != VERSION)
                | (head["flags"] != 0)
                | (size != lengths)
                | (ids == 0)
                | (ids > 4 * limits.max_device_id_length)  # more bytes than any such id holds
                | (ts < 0)
                | (ts > MAX_TS_MS)
                | ~((interval >= 1) & (interval <= MAX_TS_MS))
                | (counts == 0)
                | (counts > limits.max_chunk_samples)
                | (last_ms > MAX_TS_MS)
                | (head["channels"] != self.channels)
            )

    def _devices(
        self, raw_ids: list[bytes], keys: Sequence[bytes | None]
    ) -> tuple[list[str | None], npt.NDArray[np.bool_] | None]:
        """Each record's device id, and [R] flags for bad ids or keys (None when all are fine)."""
        table: dict[bytes, str | None] = {}
        for raw in set(raw_ids):
            table[raw] = _device_id(raw, self.limits.max_device_id_length)
        devices = list(map(table.__getitem__, raw_ids))
        bad_key = keys != raw_ids and any(
            key is not None and key != raw for key, raw in zip(keys, raw_ids, strict=True)
        )
        if not bad_key and None not in table.values():
            return devices, None
        flags = np.fromiter(
            (
                device is None or (key is not None and key != raw)
                for device, key, raw in zip(devices, keys, raw_ids, strict=True)
            ),
            bool,
            len(raw_ids),
        )
        return devices, flags

    def _payload(
        self,
        values: Sequence[bytes],
        joined: JoinedValues,
        head: npt.NDArray[np.void],
        good: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float32]:
        """[N, C] float32 values of the `good` records, in their order."""
        if not len(good):
            return np.empty((0, self.channels), dtype=np.float32)
        ends = joined.starts[good] + joined.lengths[good]  # [R'] values are the records' tails
        ids = head["id_bytes"][good]
        sizes = ends - joined.starts[good] - ids - HEADER_BYTES  # [R'] value bytes
        if (sizes == sizes[0]).all():
            # One chunk size (the common poll): each record's values are one row of a
            # sliding-window view of the buffer, so one fancy index copies them all.
            windows = sliding_window_view(joined.buffer, int(sizes[0]))  # no copy
            flat = windows[ends - sizes[0]].reshape(-1)  # [R' * 4nC]
        else:
            # Bytes slicing + join beats numpy views + concatenate here (~0.26 vs ~0.5 us/record).
            firsts = (ids.astype(np.int64) + HEADER_BYTES).tolist()
            picked = [values[k] for k in good.tolist()] if len(good) < len(values) else values
            blob = b"".join([value[a:] for value, a in zip(picked, firsts, strict=True)])
            flat = np.frombuffer(blob, np.uint8)
        samples = flat.view("<f4").reshape(-1, self.channels)  # [N, C]
        return samples.astype(np.float32, copy=False)

    def _rejections(
        self, values: Sequence[bytes], keys: Sequence[bytes | None], bad: list[int]
    ) -> list[tuple[int, str, str]]:
        """(index, reason, message) for each flagged record, from the one-record explanation."""
        out = []
        for k in bad:
            found = explain_chunk(values[k], keys[k], self.channels, self.limits)
            # The masks and explain_chunk check the same rules; a record flagged by one but
            # passed by the other would be a decoder bug, still dead-lettered, never dropped.
            reason, message = found or ("malformed_binary", "rejected by the poll-wide checks")
            out.append((k, reason, message))
        return out


def _raw_ids(values: Sequence[bytes], head: npt.NDArray[np.void]) -> list[bytes]:
    """Each record's device-id bytes (short or empty for records too short to hold them)."""
    ids = head["id_bytes"]
    if len(ids) and (ids == ids[0]).all():
        end = HEADER_BYTES + int(ids[0])
        return [value[HEADER_BYTES:end] for value in values]
    ends = (ids.astype(np.int64) + HEADER_BYTES).tolist()
    return [value[HEADER_BYTES:end] for value, end in zip(values, ends, strict=True)]


def _device_id(raw: bytes, max_length: int) -> str | None:
    """The device id those bytes spell, or None when it is empty, not UTF-8 or too long."""
    try:
        device_id = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return device_id if 0 < len(device_id) <= max_length else None


def run_timestamps(
    ts_ms: npt.NDArray[np.int64],
    interval_ms: npt.NDArray[np.float64],
    counts: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """[N] sample timestamps of R runs: run r's sample i at ts_ms[r] + rint(i * interval_ms[r])."""
    if not len(counts):
        return np.empty(0, dtype=np.int64)
    if (counts == counts[0]).all():
        if (interval_ms == np.rint(interval_ms)).all():
            # Whole-ms intervals (the usual case): exact in int64, no float rounding pass.
            whole = np.arange(int(counts[0]), dtype=np.int64)  # [n]
            stamps = np.multiply.outer(interval_ms.astype(np.int64), whole)  # [R, n]
        else:
            step = np.arange(int(counts[0]), dtype=np.float64)  # [n]
            stamps = np.rint(np.multiply.outer(interval_ms, step)).astype(np.int64)  # [R, n]
        stamps += ts_ms[:, None]  # in place: a poll's timestamps are ~1.6 MB
        return stamps.reshape(-1)
    starts = np.cumsum(counts) - counts
    position = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)  # [N]
    offsets = np.rint(position * np.repeat(interval_ms, counts)).astype(np.int64)
    return np.repeat(ts_ms, counts) + offsets
