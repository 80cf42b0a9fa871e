"""Binary chunk records (``SSB1``): the format, its constants and the encoder producers use.

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

stream/decode/binary_records.py decodes a whole poll at once; stream/decode/binary_explain.py says
why a record is rejected.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

MAGIC = b"SSB1"
PREFIX = MAGIC[:3]  # what routes a record to this decoder; the 4th byte is the version
HEADER_BYTES = 26
MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: keeps ts + offsets inside int64
HEADER_STRUCT = struct.Struct("<4sBBHqdH")
HEADER_DTYPE = np.dtype(
    {
        "names": ["version", "flags", "channels", "count", "ts_ms", "interval_ms", "id_bytes"],
        "formats": ["u1", "u1", "u1", "<u2", "<i8", "<f8", "<u2"],
        "offsets": [3, 4, 5, 6, 8, 16, 24],
        "itemsize": HEADER_BYTES,
    }
)
VERSION = MAGIC[3]


class RecordLimits(Protocol):
    """The bounds a decoder enforces (stream.config.schema.RecordsConfig satisfies it)."""

    @property
    def max_record_bytes(self) -> int: ...

    @property
    def max_chunk_samples(self) -> int: ...

    @property
    def max_device_id_length(self) -> int: ...


def encode_chunk(device_id: str, ts_ms: int, interval_ms: float, values: npt.ArrayLike) -> bytes:
    """One SSB1 record: `values` [n, C] (any real dtype, sent as float32) from ts_ms on."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"values: expected a 2-d array [n, C], got shape {array.shape}")
    count, channels = array.shape
    raw_id = device_id.encode("utf-8")
    _check_encodable(count, channels, len(raw_id))
    header = HEADER_STRUCT.pack(MAGIC, 0, channels, count, ts_ms, interval_ms, len(raw_id))
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
    head = np.zeros(records, dtype=HEADER_DTYPE)
    head["channels"], head["count"] = channels, count
    head["ts_ms"], head["interval_ms"] = ts_ms, interval_ms
    head["id_bytes"] = [len(raw) for raw in raw_ids]
    head_bytes = head.view(np.uint8).reshape(records, HEADER_BYTES)
    head_bytes[:, :3] = np.frombuffer(PREFIX, np.uint8)
    head_bytes[:, 3] = VERSION
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
