"""Event-time rules one sample at a time on the compact layout (reorder_ms == 0).

The vectorized path takes a device's samples when they continue it in order, without
gaps, from its source, with offsets that do not go back. Anything else (a duplicate, a
late sample, a gap, a change of source, an offset lower than one already held) runs
here. With reorder_ms == 0 the rules of policies.py reduce to:

- a first sample, or one from another source (``source_moves``), starts a segment;
- ``ts == newest``: duplicate; ``ts < newest``: late; both dropped;
- ``ts > newest + gap_ms``: ``reset`` starts a new segment at this sample, or ``fill``
  interpolates ``round(gap / interval) - 1`` samples first (at most ``max_fill``);
- otherwise appended; the window ending at this sample (if any) is ready at once.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from windows.arena import NO_OFFSET, CompactArena
from windows.config import WindowConfig
from windows.policies import EmittedWindow


class CompactTimeline:
    """One device of a compact arena, applying the rules in place one sample at a time."""

    def __init__(
        self,
        config: WindowConfig,
        arena: CompactArena,
        slot: int,
        counters: Counter[str],
        sink: list[EmittedWindow],
    ) -> None:
        self.config = config
        self._arena = arena
        self._slot = slot
        self._counters = counters
        self._sink = sink
        self.rejected: list[tuple[int, str]] = []  # (arrival position, "duplicates" | "late")
        self.count = int(arena.count[slot])
        self.next_start = int(arena.next_start[slot])
        self.newest = int(arena.newest_ts[slot])
        self.last_offset = int(arena.last_offset[slot])
        self.emitted = int(arena.emitted[slot])
        self.source = int(arena.source[slot])
        self._anchor = min(config.hop, config.length) - 1
        self._pos = 0

    def write_back(self) -> None:
        """Store the scalars (samples and window slots were written as they came)."""
        arena, slot = self._arena, self._slot
        arena.count[slot] = self.count
        arena.next_start[slot] = self.next_start
        arena.newest_ts[slot] = self.newest
        arena.last_offset[slot] = self.last_offset
        arena.emitted[slot] = self.emitted
        arena.source[slot] = self.source
        if self.next_start < self.count:
            w = (self.next_start // self.config.hop) % self.config.window_slots
            arena.need_offset[slot] = arena.win_min_off[slot, w]
        else:
            arena.need_offset[slot] = NO_OFFSET

    def process(self, t: int, v: np.ndarray, src: int, off: int, pos: int) -> None:
        """Apply one sample (arrival position pos in the call)."""
        self._pos = pos
        if self.count == 0 or src != self.source:
            if self.count:
                self._counters["source_moves"] += 1
            self.source = src
            self._restart(t, v, off)
        elif t == self.newest:
            self._reject("duplicates")
        elif t < self.newest:
            self._reject("late")
        elif t > self.newest + self.config.gap_ms:
            self._gap(t, v, off)
        else:
            self._append(t, v, off)

    def _reject(self, counter: str) -> None:
        self._counters[counter] += 1
        self.rejected.append((self._pos, counter))

    def _restart(self, t: int, v: np.ndarray, off: int) -> None:
        self.count, self.next_start = 0, 0
        self._append(t, v, off)

    def _gap(self, t: int, v: np.ndarray, off: int) -> None:
        newest, gap = self.newest, t - self.newest
        n_fill = self._fill_count(gap) if self.config.gap_policy == "fill" else None
        if n_fill is None:
            self._counters["gaps_reset"] += 1
            self._restart(t, v, off)
            return
        v0 = self._arena.values[self._slot, (self.count - 1) % self._arena.ring].astype(np.float64)
        v1 = v.astype(np.float64)
        for k in range(1, n_fill + 1):
            tk = newest + (k * gap) // (n_fill + 1)
            self._append(tk, (v0 + (v1 - v0) * ((tk - newest) / gap)).astype(np.float32), off)
        self._append(t, v, off)
        self._counters["gaps_filled"] += 1
        self._counters["samples_filled"] += n_fill

    def _fill_count(self, gap: int) -> int | None:
        """Samples to interpolate over a gap, or None when the gap must reset."""
        cfg = self.config
        if cfg.interval_ms is not None:
            interval = float(cfg.interval_ms)
        elif self.count >= 2:
            keep = cfg.recent_samples
            cols = np.arange(self.count - min(self.count, keep), self.count) % keep
            interval = float(np.median(np.diff(self._arena.recent_ts[self._slot, cols])))
        else:
            return None
        n_fill = max(int(np.floor(gap / interval + 0.5)) - 1, 0)
        return n_fill if n_fill <= cfg.max_fill else None

    def _append(self, t: int, v: np.ndarray, off: int) -> None:
        arena, slot, cfg = self._arena, self._slot, self.config
        i, hop, slots = self.count, cfg.hop, cfg.window_slots
        arena.values[slot, i % arena.ring] = v
        if cfg.recent_samples:
            arena.recent_ts[slot, i % cfg.recent_samples] = t
        if off < self.last_offset:
            # An offset below one already held lowers every started window's minimum.
            for start in range(self.next_start, i, hop):
                w = (start // hop) % slots
                arena.win_min_off[slot, w] = min(int(arena.win_min_off[slot, w]), off)
        if i % hop == 0:
            w = (i // hop) % slots
            arena.win_start_ts[slot, w] = t
            arena.win_start_off[slot, w] = off
            arena.win_min_off[slot, w] = off
        if i >= self._anchor and (i - self._anchor) % hop == 0:
            arena.win_anchor_ts[slot, ((i - self._anchor) // hop) % slots] = t
        self.count, self.newest, self.last_offset = i + 1, t, off
        if i == self.next_start + cfg.length - 1:
            self._emit(t, off)

    def _emit(self, end_ts: int, off: int) -> None:
        arena, slot, cfg = self._arena, self._slot, self.config
        start = self.next_start
        w = (start // cfg.hop) % cfg.window_slots
        cols = (start + np.arange(cfg.length)) % arena.ring
        self._sink.append(
            EmittedWindow(
                slot,
                self.source,
                arena.values[slot, cols],
                int(arena.win_start_ts[slot, w]),
                end_ts,
                int(arena.win_anchor_ts[slot, w]),
                int(arena.win_start_off[slot, w]),
                off,
                off,
                self._pos,
                self.emitted,
            )
        )
        self.emitted += 1
        self.next_start += cfg.hop
        self._counters["windows"] += 1
