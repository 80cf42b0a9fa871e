"""A naive reference for windows.WindowStore: one Python list per device, windows by slicing.

It keeps every sample of a device's current segment (nothing is overwritten), so it
states the rules plainly; the store must produce the same windows, in the same order,
with the same counters and low watermarks.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from windows.config import RECENT_INTERVALS, WindowConfig
from windows.errors import WindowError

NEVER = -(2**62)


@dataclass
class RefWindow:
    """One emitted window, as plain values."""

    device_id: str
    data: np.ndarray  # [L, C]
    start_ts_ms: int
    end_ts_ms: int
    source: int
    first_offset: int
    last_offset: int
    ready_offset: int
    anchor_ts_ms: int  # ts of the sample at index min(hop, length) - 1


@dataclass
class RefDevice:
    """A device's whole current segment as lists."""

    source: int
    ts: list[int] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)
    offs: list[int] = field(default_factory=list)
    next_start: int = 0
    seg_floor: int = NEVER
    last_end: int = NEVER
    last_seen_ms: int = 0
    touch: tuple[int, int] = (0, 0)


class ReferenceStore:
    """The same public behaviour as WindowStore, written for clarity instead of speed."""

    def __init__(self, config: WindowConfig) -> None:
        self.config = config
        self.devices: dict[str, RefDevice] = {}
        self.out: list[RefWindow] = []
        self.counters: Counter[str] = Counter()
        self.seq = 0

    # -- calls ------------------------------------------------------------------
    def append_bulk(self, device_ids, timestamps_ms, values, sources, offsets, now_ms=None):
        """Apply one call: LRU room for new devices first, then every sample in arrival order."""
        self.seq += 1
        ids = list(device_ids)
        distinct = list(dict.fromkeys(ids))
        if len(distinct) > self.config.max_devices:
            raise WindowError("too many devices in one call")
        new = [d for d in distinct if d not in self.devices]
        excess = len(self.devices) + len(new) - self.config.max_devices
        if excess > 0:
            in_call = set(distinct)
            order = sorted((dev.touch, d) for d, dev in self.devices.items() if d not in in_call)
            for _, d in order[:excess]:
                del self.devices[d]
                self.counters["evicted_lru"] += 1
        last_pos: dict[str, int] = {}
        self.rejected = []
        for pos, d in enumerate(ids):
            self._pos = pos
            self._one(
                d,
                int(timestamps_ms[pos]),
                np.asarray(values[pos], dtype=np.float32),
                int(sources[pos]),
                int(offsets[pos]),
            )
            last_pos[d] = pos
        for d, pos in last_pos.items():
            dev = self.devices[d]
            dev.touch = (self.seq, pos)
            dev.last_seen_ms = dev.ts[-1] if now_ms is None else now_ms
        return self.rejected

    def _reject(self, counter: str) -> None:
        self.counters[counter] += 1
        self.rejected.append((self._pos, counter))

    def ready_windows(self) -> list[RefWindow]:
        """Windows that became ready since the last call, in order."""
        out, self.out = self.out, []
        return out

    def low_watermarks(self) -> dict[int, int]:
        """Source -> smallest offset of any sample an unfinished window still needs."""
        marks: dict[int, int] = {}
        for dev in self.devices.values():
            if dev.next_start < len(dev.ts):
                low = min(dev.offs[dev.next_start :])
                marks[dev.source] = min(marks.get(dev.source, low), low)
        return marks

    def evict_idle(self, now_ms: int) -> int:
        """Forget devices unseen for more than idle_ms."""
        gone = [
            d for d, dev in self.devices.items() if now_ms - dev.last_seen_ms > self.config.idle_ms
        ]
        for d in gone:
            del self.devices[d]
        self.counters["evicted_idle"] += len(gone)
        return len(gone)

    def drop_sources(self, sources) -> int:
        """Forget every device of these sources."""
        drop = set(sources)
        gone = [d for d, dev in self.devices.items() if dev.source in drop]
        for d in gone:
            del self.devices[d]
        self.counters["dropped_rebalance"] += len(gone)
        return len(gone)

    # -- one sample -------------------------------------------------------------
    def _one(self, d: str, t: int, v: np.ndarray, src: int, off: int) -> None:
        dev = self.devices.get(d)
        if dev is None or dev.source != src:
            if dev is not None:
                self.counters["source_moves"] += 1
            dev = self.devices[d] = RefDevice(source=src)
            self._restart(d, dev, t, v, off)
            return
        newest = dev.ts[-1]
        if t == newest:
            self._reject("duplicates")
        elif t > newest:
            self._head(d, dev, t, v, off)
        else:
            self._older(d, dev, t, v, off)

    def _restart(self, d, dev, t, v, off):
        dev.ts, dev.vals, dev.offs = [], [], []
        dev.next_start, dev.seg_floor, dev.last_end = 0, t, NEVER
        self._append(d, dev, t, v, off)

    def _head(self, d, dev, t, v, off):
        cfg = self.config
        newest = dev.ts[-1]
        gap = t - newest
        if gap <= cfg.gap_ms:
            self._append(d, dev, t, v, off)
            return
        self._ready(d, dev, t, off)
        n_fill = self._fill_count(dev, gap) if cfg.gap_policy == "fill" else None
        if n_fill is None:
            self.counters["gaps_reset"] += 1
            self._restart(d, dev, t, v, off)
            return
        v0 = dev.vals[-1].astype(np.float64)
        v1 = v.astype(np.float64)
        for k in range(1, n_fill + 1):
            tk = newest + (k * gap) // (n_fill + 1)
            vk = (v0 + (v1 - v0) * ((tk - newest) / gap)).astype(np.float32)
            self._append(d, dev, tk, vk, off)
        self._append(d, dev, t, v, off)
        dev.seg_floor = t
        self.counters["gaps_filled"] += 1
        self.counters["samples_filled"] += n_fill

    def _fill_count(self, dev, gap):
        cfg = self.config
        if cfg.interval_ms is not None:
            interval = float(cfg.interval_ms)
        elif len(dev.ts) >= 2:
            interval = float(np.median(np.diff(np.array(dev.ts[-(RECENT_INTERVALS + 1) :]))))
        else:
            return None
        n = max(int(np.floor(gap / interval + 0.5)) - 1, 0)
        return n if n <= cfg.max_fill else None

    def _older(self, d, dev, t, v, off):
        if t < dev.ts[-1] - self.config.reorder_ms or t <= self._floor(dev):
            self._reject("late")
            return
        if t in dev.ts:
            self._reject("duplicates")
            return
        if self._must_force(dev):
            self._emit(d, dev, off, forced=True)
            if t <= self._floor(dev):
                self._reject("late")
                return
        p = bisect.bisect_left(dev.ts, t)
        dev.ts.insert(p, t)
        dev.vals.insert(p, v)
        dev.offs.insert(p, off)
        self.counters["reordered"] += 1
        self._ready(d, dev, dev.ts[-1], off)

    def _floor(self, dev) -> int:
        cap = self.config.capacity
        oldest_held = dev.ts[len(dev.ts) - cap] if len(dev.ts) >= cap else NEVER
        return max(dev.seg_floor, dev.last_end, oldest_held)

    def _must_force(self, dev) -> bool:
        return dev.next_start <= len(dev.ts) - self.config.capacity

    def _append(self, d, dev, t, v, off):
        if self._must_force(dev):
            self._emit(d, dev, off, forced=True)
        dev.ts.append(t)
        dev.vals.append(v)
        dev.offs.append(off)
        self._ready(d, dev, t, off)

    def _ready(self, d, dev, newest, off):
        length = self.config.length
        while (
            dev.next_start + length <= len(dev.ts)
            and newest >= dev.ts[dev.next_start + length - 1] + self.config.reorder_ms
        ):
            self._emit(d, dev, off, forced=False)

    def _emit(self, d, dev, off, forced):
        s, e = dev.next_start, dev.next_start + self.config.length
        self.out.append(
            RefWindow(
                d,
                np.stack(dev.vals[s:e]),
                dev.ts[s],
                dev.ts[e - 1],
                dev.source,
                dev.offs[s],
                dev.offs[e - 1],
                off,
                dev.ts[s + min(self.config.hop, self.config.length) - 1],
            )
        )
        dev.last_end = dev.ts[e - 1]
        dev.next_start += self.config.hop
        self.counters["windows"] += 1
        if forced:
            self.counters["windows_forced"] += 1
