"""Event-time policies, sample by sample, for the devices the vectorized path cannot take.

A device leaves the fast path when a call brings it a duplicate, a late or reordered
sample, a gap, a change of source, or more waiting data than its ring holds. Then its
held samples are copied into lists, the rules below run one sample at a time, and
the lists are written back. The rules (also stated in the tests' reference):

- ``ts == newest``: duplicate, dropped.
- ``ts > newest + gap_ms``: every complete window is emitted, then ``reset`` starts a
  new segment at this sample, or ``fill`` inserts ``round(gap / interval) - 1``
  evenly spaced, linearly interpolated samples (at most ``max_fill``; else reset).
- ``ts < newest``: late (dropped) if older than ``newest - reorder_ms`` or not newer
  than the floor (segment start, end of the last emitted window, oldest sample in the
  ring); a duplicate if equal to a held sample; otherwise inserted in place.
- A window is ready when the device's newest timestamp reaches ``end_ts + reorder_ms``;
  if the ring would overwrite a waiting window's first sample, that window is emitted
  first (forced).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass

import numpy as np

from windows.arena import NEVER, NO_OFFSET, DeviceArena
from windows.config import RECENT_INTERVALS, WindowConfig


@dataclass(frozen=True, slots=True)
class EmittedWindow:
    """A window cut by the slow path, with where it sorts in the call's output."""

    slot: int
    source: int
    data: np.ndarray  # [L, C]
    start_ts_ms: int
    end_ts_ms: int
    anchor_ts_ms: int  # see WindowBatch.anchor_ts_ms
    first_offset: int
    last_offset: int
    ready_offset: int
    position: int  # arrival position (in the call) of the sample that made it ready
    emit_index: int  # per-device emission number, orders windows readied by one sample


class Timeline:
    """One device's held samples as lists; applies the event-time rules one sample at a time."""

    def __init__(
        self,
        config: WindowConfig,
        arena: DeviceArena,
        slot: int,
        counters: Counter[str],
        sink: list[EmittedWindow],
    ) -> None:
        self.config = config
        self._counters = counters
        self._sink = sink
        self.rejected: list[tuple[int, str]] = []  # (arrival position, "duplicate" | "late")
        self._slot = slot
        count = int(arena.count[slot])
        self.base = max(0, count - config.capacity)  # segment index of ts[0]
        cols = np.arange(self.base, count) % config.capacity
        self.ts: list[int] = arena.ts[slot, cols].tolist()
        self.vals: list[np.ndarray] = list(arena.values[slot, cols])
        self.offs: list[int] = arena.offsets[slot, cols].tolist()
        self.next_start = int(arena.next_start[slot])
        self.seg_floor = int(arena.seg_floor_ts[slot])
        self.last_end = int(arena.last_end_ts[slot])
        self.emitted = int(arena.emitted[slot])
        self.source = int(arena.source[slot])
        self._pos = 0

    def write_back(self, arena: DeviceArena) -> None:
        """Store the newest capacity samples and the scalars back into the arena."""
        slot, cap = self._slot, self.config.capacity
        count = self.base + len(self.ts)
        keep = min(cap, len(self.ts))
        cols = np.arange(count - keep, count) % cap
        if keep:
            arena.ts[slot, cols] = self.ts[-keep:]
            arena.values[slot, cols] = np.asarray(self.vals[-keep:], dtype=np.float32)
            arena.offsets[slot, cols] = self.offs[-keep:]
        arena.count[slot] = count
        arena.newest_ts[slot] = self.ts[-1]
        arena.next_start[slot] = self.next_start
        arena.seg_floor_ts[slot] = self.seg_floor
        arena.last_end_ts[slot] = self.last_end
        arena.emitted[slot] = self.emitted
        held = self.offs[self.next_start - self.base :] if self.next_start < count else []
        arena.need_offset[slot] = min(held) if held else NO_OFFSET
        arena.set_source(slot, self.source)

    def process(self, t: int, v: np.ndarray, src: int, off: int, pos: int) -> None:
        """Apply one sample (arrival position pos in the call)."""
        self._pos = pos
        if not self.ts or src != self.source:
            if self.ts:
                self._counters["source_moves"] += 1
            self.source = src
            self._restart(t, v, off)
            return
        newest = self.ts[-1]
        if t == newest:
            self._reject("duplicates")
        elif t > newest + self.config.gap_ms:
            self._gap(t, v, off)
        elif t > newest:
            self._append(t, v, off)
        else:
            self._older(t, v, off)

    def _reject(self, counter: str) -> None:
        self._counters[counter] += 1
        self.rejected.append((self._pos, counter))

    def _restart(self, t: int, v: np.ndarray, off: int) -> None:
        self.ts, self.vals, self.offs = [], [], []
        self.base, self.next_start = 0, 0
        self.seg_floor, self.last_end = t, NEVER
        self._append(t, v, off)

    def _gap(self, t: int, v: np.ndarray, off: int) -> None:
        newest, gap = self.ts[-1], t - self.ts[-1]
        self._ready(t, off)
        n_fill = self._fill_count(gap) if self.config.gap_policy == "fill" else None
        if n_fill is None:
            self._counters["gaps_reset"] += 1
            self._restart(t, v, off)
            return
        v0 = self.vals[-1].astype(np.float64)
        v1 = v.astype(np.float64)
        for k in range(1, n_fill + 1):
            tk = newest + (k * gap) // (n_fill + 1)
            self._append(tk, (v0 + (v1 - v0) * ((tk - newest) / gap)).astype(np.float32), off)
        self._append(t, v, off)
        self.seg_floor = t
        self._counters["gaps_filled"] += 1
        self._counters["samples_filled"] += n_fill

    def _fill_count(self, gap: int) -> int | None:
        """Samples to interpolate over a gap, or None when the gap must reset."""
        if self.config.interval_ms is not None:
            interval = float(self.config.interval_ms)
        elif len(self.ts) >= 2:
            recent = np.asarray(self.ts[-(RECENT_INTERVALS + 1) :], dtype=np.int64)
            interval = float(np.median(np.diff(recent)))
        else:
            return None
        n_fill = max(int(np.floor(gap / interval + 0.5)) - 1, 0)
        return n_fill if n_fill <= self.config.max_fill else None

    def _older(self, t: int, v: np.ndarray, off: int) -> None:
        if t < self.ts[-1] - self.config.reorder_ms or t <= self._floor():
            self._reject("late")
            return
        p = bisect.bisect_left(self.ts, t)
        if self.ts[p] == t:
            self._reject("duplicates")
            return
        if self._must_force():
            self._emit(off, forced=True)
            if t <= self._floor():
                self._reject("late")
                return
        self.ts.insert(p, t)
        self.vals.insert(p, v)
        self.offs.insert(p, off)
        self._counters["reordered"] += 1
        self._ready(self.ts[-1], off)

    def _floor(self) -> int:
        count, cap = self.base + len(self.ts), self.config.capacity
        oldest_held = self.ts[count - cap - self.base] if count >= cap else NEVER
        return max(self.seg_floor, self.last_end, oldest_held)

    def _must_force(self) -> bool:
        return self.next_start <= self.base + len(self.ts) - self.config.capacity

    def _append(self, t: int, v: np.ndarray, off: int) -> None:
        if self._must_force():
            self._emit(off, forced=True)
        self.ts.append(t)
        self.vals.append(v)
        self.offs.append(off)
        self._ready(t, off)

    def _ready(self, newest: int, off: int) -> None:
        length, count = self.config.length, self.base + len(self.ts)
        while (
            self.next_start + length <= count
            and newest >= self.ts[self.next_start + length - 1 - self.base] + self.config.reorder_ms
        ):
            self._emit(off, forced=False)

    def _emit(self, off: int, forced: bool) -> None:
        s = self.next_start - self.base
        e = s + self.config.length
        self._sink.append(
            EmittedWindow(
                self._slot,
                self.source,
                np.asarray(self.vals[s:e], dtype=np.float32),
                self.ts[s],
                self.ts[e - 1],
                self.ts[s + min(self.config.hop, self.config.length) - 1],
                self.offs[s],
                self.offs[e - 1],
                off,
                self._pos,
                self.emitted,
            )
        )
        self.emitted += 1
        self.last_end = self.ts[e - 1]
        self.next_start += self.config.hop
        self._counters["windows"] += 1
        if forced:
            self._counters["windows_forced"] += 1
