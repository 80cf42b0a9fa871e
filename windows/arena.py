"""Preallocated ring buffers and per-device state for up to max_devices devices.

One arena per store: device state lives in parallel numpy arrays indexed by a slot,
so a whole poll updates many devices with a few vectorized operations. Arrays are
allocated once with np.zeros, so the operating system commits pages only as devices
touch them; the reserved total is the configured bound.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from windows.config import WindowConfig

log = logging.getLogger(__name__)

#: "Nothing needed" in the per-device low-watermark array, and "no window yet" timestamps.
NO_OFFSET = np.iinfo(np.int64).max
NEVER = -(2**62)


class DeviceArena:
    """Ring buffers ([D, cap] per field) plus per-device scalars; slots allocated by device id."""

    def __init__(self, config: WindowConfig) -> None:
        self.config = config
        d, cap, c = config.max_devices, config.capacity, config.channels
        self.cap = cap  # hot-path copy of config.capacity
        self.values = np.zeros((d, cap, c), dtype=np.float32)  # [D, cap, C]
        self.ts = np.zeros((d, cap), dtype=np.int64)  # [D, cap] sample timestamps, ms
        self.offsets = np.zeros((d, cap), dtype=np.int64)  # [D, cap] source offsets
        self.count = np.zeros(d, dtype=np.int64)  # samples in the current segment
        self.next_start = np.zeros(d, dtype=np.int64)  # segment index of the next window
        self.newest_ts = np.zeros(d, dtype=np.int64)
        self.seg_floor_ts = np.zeros(d, dtype=np.int64)  # older samples are late
        self.last_end_ts = np.zeros(d, dtype=np.int64)  # end of the last emitted window
        self.emitted = np.zeros(d, dtype=np.int64)  # windows emitted (orders ties)
        self.need_offset = np.full(d, NO_OFFSET, dtype=np.int64)  # low watermark per device
        self.last_seen_ms = np.zeros(d, dtype=np.int64)
        self.touch = np.zeros(d, dtype=np.int64)  # (call seq << 32) | last position in call
        self.source = np.zeros(d, dtype=np.int32)
        self.active = np.zeros(d, dtype=bool)
        self.slot_of: dict[str, int] = {}
        self.names: list[str | None] = [None] * d
        self.by_source: dict[int, set[int]] = {}
        # Pop from the end: slot 0 first, so small stores touch few pages.
        self._free: list[int] = list(range(d - 1, -1, -1))

    @property
    def active_devices(self) -> int:
        """Number of devices currently held."""
        return len(self.slot_of)

    def memory_bytes(self) -> int:
        """Bytes reserved by every array of the arena (the configured bound)."""
        arrays = (self.values, self.ts, self.offsets, self.count, self.next_start,
                  self.newest_ts, self.seg_floor_ts, self.last_end_ts, self.emitted,
                  self.need_offset, self.last_seen_ms, self.touch, self.source, self.active)
        return int(sum(a.nbytes for a in arrays))

    def allocate(self, device_id: str) -> int:
        """Give a new device a fresh slot (count 0: its first sample starts a segment)."""
        slot = self._free.pop()
        self.slot_of[device_id] = slot
        self.names[slot] = device_id
        self.active[slot] = True
        self.count[slot] = 0
        self.next_start[slot] = 0
        self.need_offset[slot] = NO_OFFSET
        self.last_end_ts[slot] = NEVER
        self.source[slot] = -1
        return slot

    def set_source(self, slot: int, source: int) -> None:
        """Record which source a device's samples come from (for drops and watermarks)."""
        old = int(self.source[slot])
        if old == source:
            return
        members = self.by_source.get(old)
        if members is not None and slot in members:
            members.discard(slot)
            if not members:
                del self.by_source[old]
        self.source[slot] = source
        self.by_source.setdefault(source, set()).add(slot)

    def set_sources(self, slots: np.ndarray, sources: np.ndarray) -> None:
        """set_source for several fresh devices at once."""
        for slot, source in zip(slots.tolist(), sources.tolist(), strict=True):
            self.set_source(slot, source)

    def release(self, slots: Iterable[int]) -> int:
        """Forget these devices and free their slots; returns how many were freed."""
        freed = 0
        for slot in slots:
            name = self.names[slot]
            if name is None:
                continue
            del self.slot_of[name]
            self.names[slot] = None
            members = self.by_source.get(int(self.source[slot]))
            if members is not None:
                members.discard(slot)
                if not members:
                    del self.by_source[int(self.source[slot])]
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
