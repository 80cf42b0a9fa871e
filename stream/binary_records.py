"""Binary chunk records (``SSB1``): the encoder producers use and a decoder for a whole poll.

A binary chunk carries one device's ``n`` consecutive samples of ``C`` channels. All
integers and floats are little-endian, there is no padding, and nothing follows the
values::

    offset   size   type      field
    0        4      bytes     magic b"SSB1" (b"SSB", then the format version b"1")
    4        1      uint8     flags: 0 (reserved; anything else is malformed_binary)
    5        1      uint8     channels C
    6        2      uint16    sample count n (1..65535; n = 1 is a single sample)
    8        8      int64     ts_ms: epoch milliseconds of the first sample
    16       8      float64   interval_ms: sample i is at ts_ms + rint(i * interval_ms)
    24       2      uint16    m: byte length of the device id
    26       m      bytes     device id, UTF-8
    26 + m   4*n*C  float32   values [n, C], row-major (sample by sample)

A record is exactly ``26 + m + 4*n*C`` bytes. ``rint`` rounds half to even, as the JSON
chunk does; ``interval_ms`` must be >= 1 even when n = 1. JSON never starts with "SSB",
so a poll may mix both formats and each record is routed by its first three bytes.

Checks, in the order a record's reason is picked (the JSON format's reasons, plus
malformed_binary for what only bytes can get wrong):

1. too_large: the value is longer than records.max_record_bytes
2. malformed_binary: shorter than the header, a version other than 1, flags != 0, or a
   length other than the header's (truncated or trailing bytes)
3. missing_field (m = 0), invalid_utf8, too_large (more than records.max_device_id_length
   characters), key_mismatch (a Kafka key present and not the device id's bytes)
4. bad_timestamp (ts_ms outside [0, MAX_TS_MS]), bad_interval (not a number in
   [1, MAX_TS_MS]), empty_values (n = 0), too_large (n > records.max_chunk_samples),
   bad_timestamp (the last sample after MAX_TS_MS)
5. wrong_channel_count (C is not the model's), non_finite_value (NaN or infinity)

The decoder checks every record of a poll at once with numpy masks over one joined
buffer; only records already known bad are explained one by one (`explain_chunk`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

MAGIC = b"SSB1"
PREFIX = MAGIC[:3]  # what routes a record to this decoder; the 4th byte is the version
HEADER_BYTES = 26
MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: keeps ts + offsets inside int64
_HEADER = struct.Struct("<4sBBHqdH")
_HEADER_DTYPE = np.dtype(
    {
        "names": ["version", "flags", "channels", "count", "ts_ms", "interval_ms", "id_bytes"],
        "formats": ["u1", "u1", "u1", "<u2", "<i8", "<f8", "<u2"],
        "offsets": [3, 4, 5, 6, 8, 16, 24],
        "itemsize": HEADER_BYTES,
    }
)
_VERSION = MAGIC[3]


class RecordLimits(Protocol):
    """The bounds a decoder enforces (stream.config.RecordsConfig satisfies it)."""

    max_record_bytes: int
    max_chunk_samples: int
    max_device_id_length: int


def encode_chunk(device_id: str, ts_ms: int, interval_ms: float, values: npt.ArrayLike) -> bytes:
    """One SSB1 record: `values` [n, C] (any real dtype, sent as float32) from ts_ms on."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"values: expected a 2-d array [n, C], got shape {array.shape}")
    count, channels = array.shape
    raw_id = device_id.encode("utf-8")
    _check_encodable(count, channels, len(raw_id))
    header = _HEADER.pack(MAGIC, 0, channels, count, ts_ms, interval_ms, len(raw_id))
    return header + raw_id + array.astype("<f4").tobytes()


def encode_chunks(
    device_ids: Sequence[str],
    ts_ms: npt.ArrayLike,
    interval_ms: npt.ArrayLike,
    values: npt.ArrayLike,
) -> list[bytes]:
    """R SSB1 records at once: ts_ms [R], interval_ms [R] (or scalars), values [R, n, C]."""
    array = np.asarray(values)
    if array.ndim != 3 or array.shape[0] != len(device_ids):
        raise ValueError(
            f"values: expected [R, n, C] with R = {len(device_ids)} device ids, "
            f"got shape {array.shape}"
        )
    records, count, channels = array.shape
    raw_ids = [device_id.encode("utf-8") for device_id in device_ids]
    head = np.zeros(records, dtype=_HEADER_DTYPE)
    head["channels"], head["count"] = channels, count
    head["ts_ms"], head["interval_ms"] = ts_ms, interval_ms
    head["id_bytes"] = [len(raw) for raw in raw_ids]
    head_bytes = head.view(np.uint8).reshape(records, HEADER_BYTES)
    head_bytes[:, :3] = np.frombuffer(PREFIX, np.uint8)
    head_bytes[:, 3] = _VERSION
    payload = array.astype("<f4").reshape(records, -1).view(np.uint8)  # [R, 4nC]
    out: list[bytes] = [b""] * records
    for id_length in np.unique(head["id_bytes"]).tolist():
        _check_encodable(count, channels, id_length)
        rows = np.flatnonzero(head["id_bytes"] == id_length)
        ids = np.frombuffer(b"".join([raw_ids[r] for r in rows.tolist()]), np.uint8)
        table = np.hstack([head_bytes[rows], ids.reshape(len(rows), id_length), payload[rows]])
        blob, width = table.tobytes(), table.shape[1]
        for k, r in enumerate(rows.tolist()):
            out[r] = blob[k * width : (k + 1) * width]
    return out


def _check_encodable(count: int, channels: int, id_bytes: int) -> None:
    """Refuse what the header's fields cannot hold."""
    if not 0 <= count <= 0xFFFF:
        raise ValueError(f"values: at most 65535 samples per chunk, got {count}")
    if not 0 <= channels <= 0xFF:
        raise ValueError(f"values: at most 255 channels, got {channels}")
    if id_bytes > 0xFFFF:
        raise ValueError(f"device_id: at most 65535 UTF-8 bytes, got {id_bytes}")


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
        return head.view(_HEADER_DTYPE)[:, 0]


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
                | (head["version"] != _VERSION)
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


def explain_chunk(
    value: bytes, key: bytes | None, channels: int, limits: RecordLimits
) -> tuple[str, str] | None:
    """(reason, message) for the first rule a binary record breaks, None when it is valid."""
    if len(value) > limits.max_record_bytes:
        return "too_large", (
            f"the value is {len(value)} bytes; at most {limits.max_record_bytes} "
            "(records.max_record_bytes)"
        )
    if len(value) < HEADER_BYTES:
        return "malformed_binary", (
            f"the binary chunk is {len(value)} bytes, shorter than its {HEADER_BYTES}-byte header"
        )
    magic, flags, got_channels, count, ts_ms, interval_ms, id_bytes = _HEADER.unpack_from(value)
    if magic != MAGIC:
        return "malformed_binary", (
            f"binary chunk version {_show(magic[3:])}; this worker reads version 1 ({MAGIC!r})"
        )
    if flags:
        return "malformed_binary", f"flags: expected 0, got {flags}"
    size = HEADER_BYTES + id_bytes + 4 * count * got_channels
    if size != len(value):
        return "malformed_binary", (
            f"the header describes {size} bytes ({id_bytes}-byte device id, {count} samples x "
            f"{got_channels} channels), the value has {len(value)}: "
            f"{'truncated' if size > len(value) else 'trailing bytes'}"
        )
    problem = _explain_device(value[HEADER_BYTES : HEADER_BYTES + id_bytes], key, limits)
    problem = problem or _explain_times(ts_ms, interval_ms, count, limits)
    if problem:
        return problem
    if got_channels != channels:
        return "wrong_channel_count", (
            f"channels: expected {channels} (the model's channels), got {got_channels}"
        )
    data = np.frombuffer(value, "<f4", count * channels, HEADER_BYTES + id_bytes)
    finite = np.isfinite(data)
    if finite.all():
        return None
    where = int(np.argmin(finite))
    sample, channel = divmod(where, channels)
    return "non_finite_value", (
        f"values[{sample}][{channel}] (sample {sample}, channel {channel}): "
        f"expected a finite number, got {float(data[where])}"
    )


def _explain_device(raw: bytes, key: bytes | None, limits: RecordLimits) -> tuple[str, str] | None:
    """The device-id rules: present, UTF-8, short enough, and spelled like the key."""
    if not raw:
        return "missing_field", "device_id: expected a non-empty UTF-8 id, got 0 bytes"
    try:
        device_id = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return "invalid_utf8", f"device_id is not UTF-8: {bad.reason} at byte {bad.start}"
    if len(device_id) > limits.max_device_id_length:
        return "too_large", (
            f"device_id: {len(device_id)} characters; at most "
            f"{limits.max_device_id_length} (records.max_device_id_length)"
        )
    if key is not None and key != raw:
        return "key_mismatch", f"the key {_show(key)} differs from device_id {_show(device_id)}"
    return None


def _explain_times(
    ts_ms: int, interval_ms: float, count: int, limits: RecordLimits
) -> tuple[str, str] | None:
    """The timing rules: first timestamp, interval, sample count and last timestamp."""
    if not 0 <= ts_ms <= MAX_TS_MS:
        return "bad_timestamp", f"ts: expected epoch milliseconds in [0, {MAX_TS_MS}], got {ts_ms}"
    if not 1 <= interval_ms <= MAX_TS_MS:
        return "bad_interval", (
            f"interval_ms: expected a number of milliseconds >= 1, got {interval_ms!r}"
        )
    if count == 0:
        return "empty_values", "values: expected at least one sample, got 0"
    if count > limits.max_chunk_samples:
        return "too_large", (
            f"values: {count} samples in one chunk; at most {limits.max_chunk_samples} "
            "(records.max_chunk_samples)"
        )
    if ts_ms + (count - 1) * interval_ms > MAX_TS_MS:
        return "bad_timestamp", f"ts: the chunk's last sample falls after {MAX_TS_MS}"
    return None


def _show(value: object, limit: int = 60) -> str:
    """A short repr for messages, so a huge bad value cannot bloat the dead-letter header."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
