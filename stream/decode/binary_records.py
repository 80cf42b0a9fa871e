"""The poll-wide decoder of binary chunk records (format: stream/decode/binary_format.py).

Every record of a poll is checked at once with numpy masks over one joined buffer;
only records already known bad are explained one by one (stream/decode/binary_explain.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from stream.decode.binary_explain import explain_chunk
from stream.decode.binary_format import (
    HEADER_BYTES,
    HEADER_DTYPE,
    MAX_TS_MS,
    PREFIX,
    VERSION,
    RecordLimits,
)


@dataclass(frozen=True, slots=True)
class JoinedValues:
    """A poll's record values and keys in one byte buffer; a None value counts as zero bytes."""

    buffer: npt.NDArray[np.uint8]  # [total bytes]
    starts: npt.NDArray[np.int64]  # [R] first byte of each record's value
    lengths: npt.NDArray[np.int64]  # [R]
    key_starts: npt.NDArray[np.int64]  # [R] first byte of each record's key
    key_lengths: npt.NDArray[np.int64]  # [R] -1 = no key

    @classmethod
    def of(
        cls, values: Sequence[bytes | None], keys: Sequence[bytes | None] | None = None
    ) -> JoinedValues:
        """Join the values, then the keys (one copy), and note where each starts."""
        keys = [None] * len(values) if keys is None else keys
        key_lengths = np.fromiter((-1 if k is None else len(k) for k in keys), np.int64, len(keys))
        try:  # no tombstone among them, unless len() refuses a None
            present = cast("Sequence[bytes]", values)
            lengths = np.fromiter(map(len, present), np.int64, len(present))
        except TypeError:
            present = [value or b"" for value in values]
            lengths = np.fromiter(map(len, present), np.int64, len(present))
        blob = b"".join([*present, *(k for k in keys if k is not None)])
        starts = np.cumsum(lengths) - lengths
        key_sizes = np.maximum(key_lengths, 0)
        key_starts = np.cumsum(key_sizes) - key_sizes + int(lengths.sum())
        return cls(np.frombuffer(blob, np.uint8), starts, lengths, key_starts, key_lengths)

    def take(self, which: npt.NDArray[np.int64]) -> JoinedValues:
        """The records at `which`, same buffer."""
        return JoinedValues(
            self.buffer,
            self.starts[which],
            self.lengths[which],
            self.key_starts[which],
            self.key_lengths[which],
        )

    def value(self, k: int) -> bytes:
        """Record k's value bytes (empty for a tombstone)."""
        start = int(self.starts[k])
        return self.buffer[start : start + int(self.lengths[k])].tobytes()

    def key(self, k: int) -> bytes | None:
        """Record k's key bytes, or None."""
        if self.key_lengths[k] < 0:
            return None
        start = int(self.key_starts[k])
        return self.buffer[start : start + int(self.key_lengths[k])].tobytes()

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

    def decode(self, joined: JoinedValues) -> BinaryRuns:
        """Decode records that all start with PREFIX (values and keys in `joined`)."""
        head = joined.headers()  # [R]
        bad = self._header_flags(head, joined.lengths)  # [R]
        devices, bad_ids = self._devices(joined, head, bad)
        bad |= bad_ids
        good = np.flatnonzero(~bad)
        counts = head["count"][good].astype(np.int64)  # [R']
        samples = self._payload(joined, head, good)  # [N, C]
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
        return BinaryRuns(
            positions=good,
            devices=devices[good].tolist(),  # every accepted record's id decoded: no None
            counts=counts,
            timestamps_ms=timestamps,
            values=samples,
            rejected=self._rejections(joined, np.flatnonzero(bad).tolist()),
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
        self, joined: JoinedValues, head: npt.NDArray[np.void], bad: npt.NDArray[np.bool_]
    ) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]:
        """[R] each record's device id (None where unknown), and [R] flags for bad ids or keys.

        Ids are read for the records whose header is sound (the others are rejected
        anyway); each distinct id is decoded once.
        """
        devices = np.full(len(bad), None, dtype=object)
        flags = np.zeros(len(bad), dtype=bool)
        sound = np.flatnonzero(~bad)
        if not len(sound):
            return devices, flags
        id_lengths = head["id_bytes"][sound].astype(np.int64)
        id_starts = joined.starts[sound] + HEADER_BYTES
        for length in np.unique(id_lengths).tolist():  # one id length per poll, as a rule
            mine = id_lengths == length
            at = sound[mine]
            ids = _rows(joined.buffer, id_starts[mine], length)  # [r, length]
            distinct, inverse = np.unique(ids.view(f"V{length}")[:, 0], return_inverse=True)
            limit = self.limits.max_device_id_length
            table = [_device_id(raw.tobytes(), limit) for raw in distinct]
            known = np.empty(len(table), dtype=object)
            known[:] = table
            devices[at] = known[inverse]
            flags[at] = np.array([device is None for device in table], dtype=bool)[inverse]
            key_lengths = joined.key_lengths[at]
            flags[at] |= (key_lengths >= 0) & (key_lengths != length)
            same = np.flatnonzero(key_lengths == length)
            if len(same):
                keys = _rows(joined.buffer, joined.key_starts[at[same]], length)
                flags[at[same]] |= (keys != ids[same]).any(axis=1)
        return devices, flags

    def _payload(
        self, joined: JoinedValues, head: npt.NDArray[np.void], good: npt.NDArray[np.int64]
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
            flat = _rows(joined.buffer, ends - sizes[0], int(sizes[0])).reshape(-1)
        else:
            # Bytes slicing + join beats numpy views + concatenate here (~0.26 vs ~0.5 us/record).
            blob = joined.buffer.tobytes()
            firsts = (ends - sizes).tolist()
            flat = np.frombuffer(
                b"".join([blob[a:b] for a, b in zip(firsts, ends.tolist(), strict=True)]),
                np.uint8,
            )
        samples = flat.view("<f4").reshape(-1, self.channels)  # [N, C]
        return samples.astype(np.float32, copy=False)

    def _rejections(self, joined: JoinedValues, bad: list[int]) -> list[tuple[int, str, str]]:
        """(index, reason, message) for each flagged record, from the one-record explanation."""
        out = []
        for k in bad:
            found = explain_chunk(joined.value(k), joined.key(k), self.channels, self.limits)
            # The masks and explain_chunk check the same rules; a record flagged by one but
            # passed by the other would be a decoder bug, still dead-lettered, never dropped.
            reason, message = found or ("malformed_binary", "rejected by the poll-wide checks")
            out.append((k, reason, message))
        return out


def _rows(
    buffer: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], length: int
) -> npt.NDArray[np.uint8]:
    """[r, length] the bytes at each of `starts` (one fancy index over a sliding view)."""
    if length == 0:
        return np.zeros((len(starts), 0), dtype=np.uint8)
    return sliding_window_view(buffer, length)[starts]


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
