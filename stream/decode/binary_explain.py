"""Why a binary chunk is rejected: the first rule it breaks, as a dead-letter reason and message.

Runs only for records the poll-wide masks of stream/decode/binary_records.py flagged.
"""

from __future__ import annotations

import numpy as np

from stream.decode.binary_format import HEADER_BYTES, HEADER_STRUCT, MAGIC, MAX_TS_MS, RecordLimits


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
    fields = HEADER_STRUCT.unpack_from(value)
    magic, flags, got_channels, count, ts_ms, interval_ms, id_bytes = fields
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
