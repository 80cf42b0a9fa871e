"""Configuration of the per-device ring buffers and sliding windows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from windows.errors import WindowError

#: How many of a device's most recent sample intervals the median interval is taken over.
RECENT_INTERVALS = 16

#: Default ring slack (samples beyond the window length), used when reorder_ms > 0. 128
#: lets one vectorized round write a whole 100-sample chunk per device, and lets a window
#: wait for up to ~128 newer samples (reorder_ms) before it is force-emitted; it costs
#: 128 * (4 C + 16) bytes per device (~3 KB for C = 3). With reorder_ms == 0 windows never
#: wait, so the slack changes nothing and is not stored.
DEFAULT_SLACK = 128

#: Upper bounds that keep every count and index inside the int64 arithmetic of the store
#: (sample counts grow by hop per window, timestamps are int64 ms) and a window inside memory.
MAX_LENGTH = 1_000_000
MAX_HOP = 2**31 - 1
MAX_DEVICES = 100_000_000
#: Durations in ms (reorder, gap, idle, interval): ~31.7 years, far from int64 overflow when
#: added to epoch-ms timestamps.
MAX_DURATION_MS = 10**12


@dataclass(frozen=True)
class WindowConfig:
    """Window shape and event-time policy; see ``bytes_per_device`` for the memory per device.

    Defaults: duplicates and late samples are dropped, no reordering tolerance
    (``reorder_ms=0``), a jump of more than one second resets the partial window,
    the sampling interval is the median of the last 16 intervals, devices idle for
    ten minutes are evicted, at most 100,000 devices are held.
    """

    length: int
    hop: int
    channels: int
    reorder_ms: int = 0
    gap_ms: int = 1000
    gap_policy: Literal["reset", "fill"] = "reset"
    max_fill: int = 10
    interval_ms: float | None = None
    idle_ms: int = 600_000
    max_devices: int = 100_000
    slack: int = DEFAULT_SLACK

    def __post_init__(self) -> None:
        _bounded("length", self.length, MAX_LENGTH)
        _bounded("hop", self.hop, MAX_HOP)
        _positive("channels", self.channels)
        _bounded("gap_ms", self.gap_ms, MAX_DURATION_MS)
        _bounded("idle_ms", self.idle_ms, MAX_DURATION_MS)
        _bounded("max_devices", self.max_devices, MAX_DEVICES)
        if self.reorder_ms < 0:
            raise WindowError(f"reorder_ms={self.reorder_ms} must be >= 0")
        if self.reorder_ms > self.gap_ms:
            # A gap must make every waiting window ready; otherwise a reset would drop them.
            raise WindowError(
                f"reorder_ms={self.reorder_ms} must be <= gap_ms={self.gap_ms}; raise gap_ms"
            )
        if self.gap_policy not in ("reset", "fill"):
            raise WindowError(f"gap_policy={self.gap_policy!r} must be 'reset' or 'fill'")
        if not 0 <= self.max_fill <= self.gap_ms:
            raise WindowError(
                f"max_fill={self.max_fill} must be between 0 and gap_ms={self.gap_ms}"
            )
        if self.interval_ms is not None and not 0 < self.interval_ms <= MAX_DURATION_MS:
            raise WindowError(
                f"interval_ms={self.interval_ms} must be in (0, {MAX_DURATION_MS}] "
                "(or None to infer it)"
            )
        if self.slack < RECENT_INTERVALS + 1:
            raise WindowError(
                f"slack={self.slack} must be >= {RECENT_INTERVALS + 1} so the ring holds the "
                "samples the median interval is taken over"
            )

    @property
    def reserved_bytes(self) -> int:
        """Bytes the store reserves up front: max_devices x bytes_per_device."""
        return self.max_devices * self.bytes_per_device

    @property
    def capacity(self) -> int:
        """Logical ring capacity per device, in samples (forced emission and the late floor)."""
        return self.length + self.slack

    @property
    def compact(self) -> bool:
        """True when samples only ever arrive in order (reorder_ms == 0): the compact layout."""
        return self.reorder_ms == 0

    @property
    def ring_samples(self) -> int:
        """Samples physically held per device: length (compact) or capacity."""
        return self.length if self.compact else self.capacity

    @property
    def window_slots(self) -> int:
        """Started, unfinished windows a device can have at once (compact layout): ceil(L / H)."""
        return -(-self.length // self.hop)

    @property
    def recent_samples(self) -> int:
        """Timestamps kept for the median interval (compact layout, fill without interval_ms)."""
        if self.gap_policy == "fill" and self.interval_ms is None:
            return RECENT_INTERVALS + 1
        return 0

    @property
    def bytes_per_device(self) -> int:
        """Bytes of ring storage and state per device, in the layout this config selects.

        Compact: float32 values of ``length`` samples, four int64 per window slot,
        int64 recent timestamps, scalars. Otherwise: float32 values, int64 timestamps
        and offsets of ``length + slack`` samples, scalars.
        """
        if self.compact:
            return (
                self.length * 4 * self.channels
                + self.window_slots * 4 * 8
                + self.recent_samples * 8
                + COMPACT_STATE_BYTES
            )
        return self.capacity * (4 * self.channels + 8 + 8) + DEVICE_STATE_BYTES


#: Per-device scalar state of the per-sample layout (counts, timestamps, offsets, source,
#: bookkeeping), in bytes.
DEVICE_STATE_BYTES = 9 * 8 + 4 + 1
#: Per-device scalar state of the compact layout, in bytes.
COMPACT_STATE_BYTES = 8 * 8 + 4 + 1


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise WindowError(f"{name}={value} must be > 0")


def _bounded(name: str, value: int, most: int) -> None:
    _positive(name, value)
    if value > most:
        raise WindowError(f"{name}={value} must be <= {most}")
