"""Preallocated per-device state for up to max_devices devices, in two layouts.

One arena per store: device state lives in parallel numpy arrays indexed by a slot,
so a whole poll updates many devices with a few vectorized operations. Arrays are
allocated once with np.zeros, so the operating system commits pages only as devices
touch them; the reserved total is the configured bound.

- ``CompactArena`` (``reorder_ms == 0``): per sample only the float32 values, in a ring
  of ``length`` samples; timestamps and offsets are kept per window (start, anchor,
  smallest offset since the start), in a ring of ``ceil(length / hop)`` windows.
- ``DeviceArena`` (``reorder_ms > 0``): samples can be inserted in the middle, which
  moves the sample a window boundary sits on, so every sample keeps its timestamp and
  offset, in a ring of ``length + slack`` samples.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Iterable

import numpy as np

from windows.config import WindowConfig

log = logging.getLogger(__name__)

#: "Nothing needed" in the per-device low-watermark array, and "no window yet" timestamps.
NO_OFFSET = np.iinfo(np.int64).max
NEVER = -(2**62)


def lazy_zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    """A zeroed array on its own anonymous mapping, without transparent huge pages.

    Pages are committed 4 KB at a time as devices touch them. numpy asks for huge
    pages on large arrays, which commits 2 MB at a time: with a few thousand devices
    that rounding alone is several hundred bytes per device.
    """
    count = int(np.prod(shape))
    buf = mmap.mmap(-1, max(count * np.dtype(dtype).itemsize, 1))
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        buf.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)


class DeviceSlots:
    """Slots by device id plus the scalars every layout keeps; subclasses add the samples."""

    def __init__(self, config: WindowConfig) -> None:
        self.config = config
        d = config.max_devices
        self.count = np.zeros(d, dtype=np.int64)  # samples in the current segment
        self.next_start = np.zeros(d, dtype=np.int64)  # segment index of the next window
        self.newest_ts = np.zeros(d, dtype=np.int64)
        self.emitted = np.zeros(d, dtype=np.int64)  # windows emitted (orders ties)
        self.need_offset = np.full(d, NO_OFFSET, dtype=np.int64)  # low watermark per device
        self.last_seen_ms = np.zeros(d, dtype=np.int64)
        self.touch = np.zeros(d, dtype=np.int64)  # (call seq << 32) | last position in call
        self.source = np.zeros(d, dtype=np.int32)
        self.active = np.zeros(d, dtype=bool)
        self.slot_of: dict[str, int] = {}
        self.names: list[str | None] = [None] * d
        # Pop from the end: slot 0 first, so small stores touch few pages.
        self._free: list[int] = list(range(d - 1, -1, -1))

    @property
    def active_devices(self) -> int:
        """Number of devices currently held."""
        return len(self.slot_of)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (
            self.count,
            self.next_start,
            self.newest_ts,
            self.emitted,
            self.need_offset,
            self.last_seen_ms,
            self.touch,
            self.source,
            self.active,
        )

    def memory_bytes(self) -> int:
        """Bytes reserved by every array of the arena (the configured bound)."""
        return int(sum(a.nbytes for a in self._arrays()))

    def allocate(self, device_id: str) -> int:
        """Give a new device a fresh slot (count 0: its first sample starts a segment)."""
        slot = self._free.pop()
        self.slot_of[device_id] = slot
        self.names[slot] = device_id
        self.active[slot] = True
        self.count[slot] = 0
        self.next_start[slot] = 0
        self.need_offset[slot] = NO_OFFSET
        self.source[slot] = -1
        return slot

    def slots_of_sources(self, sources: Iterable[int]) -> np.ndarray:
        """Active slots whose device belongs to one of these sources (a scan: no index kept)."""
        wanted = np.fromiter(sources, dtype=np.int64)
        return np.flatnonzero(self.active & np.isin(self.source, wanted))

    def release(self, slots: Iterable[int]) -> int:
        """Forget these devices and free their slots; returns how many were freed."""
        freed = 0
        for slot in slots:
            name = self.names[slot]
            if name is None:
                continue
            del self.slot_of[name]
            self.names[slot] = None
            self.active[slot] = False
            self.need_offset[slot] = NO_OFFSET
            self.count[slot] = 0
            self._free.append(slot)
            freed += 1
        return freed

    def lru_victims(self, how_many: int, keep: np.ndarray) -> np.ndarray:
        """The how_many least recently updated active slots, excluding those in keep."""
        mask = self.active.copy()
        mask[keep] = False
        candidates = np.flatnonzero(mask)
        if how_many >= len(candidates):
            return candidates
        part = np.argpartition(self.touch[candidates], how_many - 1)[:how_many]
        return candidates[part]


class DeviceArena(DeviceSlots):
    """Per-sample rings ([D, cap] values, timestamps, offsets) for reorder_ms > 0."""

    def __init__(self, config: WindowConfig) -> None:
        super().__init__(config)
        d, cap, c = config.max_devices, config.capacity, config.channels
        self.cap = cap  # hot-path copy of config.capacity
        self.values = lazy_zeros((d, cap, c), np.float32)  # [D, cap, C]
        self.ts = lazy_zeros((d, cap), np.int64)  # [D, cap] sample timestamps, ms
        self.offsets = lazy_zeros((d, cap), np.int64)  # [D, cap] source offsets
        self.seg_floor_ts = np.zeros(d, dtype=np.int64)  # older samples are late
        self.last_end_ts = np.zeros(d, dtype=np.int64)  # end of the last emitted window

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (
            *super()._arrays(),
            self.values,
            self.ts,
            self.offsets,
            self.seg_floor_ts,
            self.last_end_ts,
        )

    def allocate(self, device_id: str) -> int:
        """A fresh slot; no window emitted yet."""
        slot = super().allocate(device_id)
        self.last_end_ts[slot] = NEVER
        return slot

    def set_source(self, slot: int, source: int) -> None:
        """Record which source a device's samples come from (for drops and watermarks)."""
        self.source[slot] = source

    def set_sources(self, slots: np.ndarray, sources: np.ndarray) -> None:
        """set_source for several fresh devices at once."""
        self.source[slots] = sources


class CompactArena(DeviceSlots):
    """Values-only sample rings plus per-window rings, for reorder_ms == 0 (in-order samples).

    Per device: ``length`` samples of float32 values (ring by segment index), and per
    window number w (window start = w * hop) at ring column ``w % window_slots``: the
    start sample's timestamp and offset, the anchor sample's timestamp, and the smallest
    offset of any sample from the window's start on (the device's low watermark while
    it is the next window). With gap_policy "fill" and no interval_ms, also the last
    RECENT_INTERVALS + 1 timestamps (the median interval is taken over them).
    """

    def __init__(self, config: WindowConfig) -> None:
        super().__init__(config)
        d, c, w = config.max_devices, config.channels, config.window_slots
        self.ring = config.ring_samples
        self.values = lazy_zeros((d, self.ring, c), np.float32)  # [D, L, C]
        # the same memory, one element per sample: slices copy whole samples
        self.rows = self.values.view(np.dtype((np.void, 4 * c))).reshape(d, self.ring)
        self.last_offset = np.zeros(d, dtype=np.int64)  # offset of the newest sample
        self.win_start_ts = np.zeros((d, w), dtype=np.int64)  # [D, W]
        self.win_start_off = np.zeros((d, w), dtype=np.int64)
        self.win_anchor_ts = np.zeros((d, w), dtype=np.int64)
        self.win_min_off = np.zeros((d, w), dtype=np.int64)
        self.recent_ts = np.zeros((d, config.recent_samples), dtype=np.int64)  # [D, 0 or 17]

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (
            *super()._arrays(),
            self.values,
            self.last_offset,
            self.win_start_ts,
            self.win_start_off,
            self.win_anchor_ts,
            self.win_min_off,
            self.recent_ts,
        )
