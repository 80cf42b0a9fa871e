"""The vectorized append on the compact layout: runs of in-order samples, no per-sample Python.

A run is a stretch of one device's samples that share a source and an offset (one
Kafka record, typically). A call's runs are grouped by device (an argsort of the
runs, not of the samples); a sample's segment index follows from its device's count
and the lengths of the device's earlier runs. Windows a call completes are copied
straight from the ring and the call's own values (one gather), and the ring only
receives the tail a device still needs afterwards, so it holds ``length`` samples
whatever the size of a call.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from windows.arena import NO_OFFSET, CompactArena
from windows.fastpath import WindowColumns


@dataclass(frozen=True)
class Runs:
    """A call's runs grouped by device slot (stable: arrival order within a device)."""

    slots: np.ndarray  # int64 [R] device slot of each run
    lengths: np.ndarray  # int64 [R] samples per run, >= 1
    first: np.ndarray  # int64 [R] arrival position (in the call) of the run's first sample
    sources: np.ndarray  # int32 [R]
    offsets: np.ndarray  # int64 [R]

    @classmethod
    def grouped(cls, slots, lengths, first, sources, offsets) -> Runs:
        """Runs in arrival order, reordered so each device's runs are adjacent."""
        if len(slots) > 1 and (slots[1:] < slots[:-1]).any():
            order = np.argsort(slots, kind="stable")
            return cls(slots[order], lengths[order], first[order], sources[order], offsets[order])
        return cls(slots, lengths, first, sources, offsets)

    def select(self, keep: np.ndarray) -> Runs:
        """The runs where keep (bool [R]) is set, still grouped."""
        return Runs(
            self.slots[keep],
            self.lengths[keep],
            self.first[keep],
            self.sources[keep],
            self.offsets[keep],
        )

    @cached_property
    def device_starts(self) -> np.ndarray:
        """Index of each device's first run (int64 [K])."""
        change = np.empty(len(self.slots), dtype=bool)
        change[0] = True
        np.not_equal(self.slots[1:], self.slots[:-1], out=change[1:])
        return np.flatnonzero(change)

    @cached_property
    def device_ends(self) -> np.ndarray:
        """Index of each device's last run (int64 [K])."""
        ends = np.empty_like(self.device_starts)
        ends[:-1] = self.device_starts[1:] - 1
        ends[-1] = len(self.slots) - 1
        return ends


def dirty_runs(arena: CompactArena, runs: Runs, ts: np.ndarray) -> np.ndarray:
    """bool [R]: runs of devices the vectorized path cannot take in this call.

    A device is clean when every sample continues it in order with a step in
    (0, gap_ms], every run comes from its source (a new device takes its first run's),
    and offsets never go below the newest one it holds.
    """
    gap = arena.config.gap_ms
    dstart = runs.device_starts
    per_dev = runs.device_ends - dstart + 1
    slots = runs.slots[dstart]
    fresh = arena.count[slots] == 0
    first_ts = ts[runs.first]
    prev_ts = np.empty_like(first_ts)
    prev_ts[1:] = ts[runs.first[:-1] + runs.lengths[:-1] - 1]
    prev_ts[dstart] = np.where(fresh, first_ts[dstart] - 1, arena.newest_ts[slots])
    bad = _outside_step(first_ts - prev_ts, gap)
    owner = np.where(fresh, runs.sources[dstart], arena.source[slots])
    bad |= runs.sources != np.repeat(owner, per_dev)
    prev_off = np.empty_like(runs.offsets)
    prev_off[1:] = runs.offsets[:-1]
    prev_off[dstart] = np.where(fresh, np.iinfo(np.int64).min, arena.last_offset[slots])
    bad |= runs.offsets < prev_off
    if len(ts) > len(runs.slots):
        bad |= _bad_inside(runs, ts, gap)
    return np.repeat(np.logical_or.reduceat(bad, dstart), per_dev)


def _outside_step(step: np.ndarray, gap_ms: int) -> np.ndarray:
    """True where step is not in (0, gap_ms] (one unsigned compare)."""
    return (step - 1).view(np.uint64) >= gap_ms


def _bad_inside(runs: Runs, ts: np.ndarray, gap_ms: int) -> np.ndarray:
    """bool [R]: runs with a step inside them outside (0, gap_ms]; one diff over the call."""
    steps = np.diff(ts)  # [N - 1]; entries across run boundaries are overwritten below
    boundaries = runs.first[runs.first > 0] - 1
    steps[boundaries] = 1
    steps -= 1
    if steps.view(np.uint64).max() < gap_ms:
        return np.zeros(len(runs.slots), dtype=bool)
    at = np.flatnonzero(steps.view(np.uint64) >= gap_ms) + 1  # later sample of each bad step
    order = np.argsort(runs.first)
    run_of = order[np.searchsorted(runs.first[order], at, side="right") - 1]
    bad = np.zeros(len(runs.slots), dtype=bool)
    bad[run_of] = True
    return bad


@dataclass(frozen=True)
class _Devices:
    """The devices of a clean call, and where their samples sit."""

    slots: np.ndarray  # int64 [K]
    first_run: np.ndarray  # int64 [K]
    last_run: np.ndarray  # int64 [K]
    count0: np.ndarray  # int64 [K] segment index of the device's first sample in the call
    shift: np.ndarray  # int64 [K] segment index - grouped position, per device
    run_start: np.ndarray  # int64 [R] grouped position of each run's first sample
    run_end: np.ndarray  # int64 [R] one past each run's last grouped position

    @classmethod
    def of(cls, arena: CompactArena, runs: Runs) -> _Devices:
        first_run = runs.device_starts
        last_run = runs.device_ends
        slots = runs.slots[first_run]
        run_end = np.cumsum(runs.lengths)
        run_start = run_end - runs.lengths
        count0 = arena.count[slots]
        return cls(
            slots, first_run, last_run, count0, count0 - run_start[first_run], run_start, run_end
        )

    def locate(self, runs: Runs, dev: np.ndarray, index: np.ndarray):
        """Arrival position and run of the samples at segment index of devices dev."""
        g = index - self.shift[dev]
        run = np.searchsorted(self.run_end, g, side="right")
        return runs.first[run] + (g - self.run_start[run]), run


def append_clean(
    arena: CompactArena, runs: Runs, ts: np.ndarray, values: np.ndarray
) -> WindowColumns | None:
    """Append clean, grouped runs (ts [N], values void [N]); return the windows they readied."""
    cfg = arena.config
    length, hop = cfg.length, cfg.hop
    dev = _Devices.of(arena, runs)
    slots = dev.slots
    count1 = dev.count0 + (dev.run_end[dev.last_run] - dev.run_start[dev.first_run])
    ns0 = arena.next_start[slots]
    complete = np.where(count1 - length >= ns0, (count1 - length - ns0) // hop + 1, 0)
    ns1 = ns0 + complete * hop
    columns = None
    if complete.any():
        columns = _windows(arena, runs, dev, ts, values, ns0, complete)
        arena.emitted[slots] += complete
    _write_ring(arena, runs, dev, values, count1, ns1)
    _write_window_slots(arena, runs, dev, ts, count1, ns1)
    if cfg.recent_samples:
        _write_recent(arena, runs, dev, ts, count1)
    arena.count[slots] = count1
    arena.next_start[slots] = ns1
    arena.newest_ts[slots] = ts[runs.first[dev.last_run] + runs.lengths[dev.last_run] - 1]
    arena.last_offset[slots] = runs.offsets[dev.last_run]
    arena.source[slots] = runs.sources[dev.first_run]
    w = (ns1 // hop) % cfg.window_slots
    arena.need_offset[slots] = np.where(ns1 < count1, arena.win_min_off[slots, w], NO_OFFSET)
    return columns


def _windows(arena, runs, dev, ts, values, ns0, complete) -> WindowColumns:
    """Fields and data of the windows the call completes (at most one per sample)."""
    cfg = arena.config
    hop = cfg.hop
    wd, k = _expand(complete)
    end = ns0[wd] + k * hop + (cfg.length - 1)
    at_end, run_end = dev.locate(runs, wd, end)
    if len(at_end) > 1 and (at_end[1:] < at_end[:-1]).any():
        # the order the windows became ready in (one end sample readies one window)
        order = np.argsort(at_end)
        wd, k, end, at_end, run_end = wd[order], k[order], end[order], at_end[order], run_end[order]
    start = end - (cfg.length - 1)
    anchor = start + (min(hop, cfg.length) - 1)
    slot_w, c0 = dev.slots[wd], dev.count0[wd]
    col = (start // hop) % cfg.window_slots
    at_start, run_start = dev.locate(runs, wd, np.maximum(start, c0))
    at_anchor, _ = dev.locate(runs, wd, np.maximum(anchor, c0))
    in_call = start >= c0
    offsets = runs.offsets
    return WindowColumns(
        slots=slot_w,
        sources=runs.sources[dev.first_run][wd],
        data=_window_data(arena, runs, dev, values, wd, start, ns0),
        start_ts_ms=np.where(in_call, ts[at_start], arena.win_start_ts[slot_w, col]),
        end_ts_ms=ts[at_end],
        anchor_ts_ms=np.where(anchor >= c0, ts[at_anchor], arena.win_anchor_ts[slot_w, col]),
        first_offsets=np.where(in_call, offsets[run_start], arena.win_start_off[slot_w, col]),
        last_offsets=offsets[run_end],
        ready_offsets=offsets[run_end],
        positions=at_end,
        emit_index=arena.emitted[slot_w] + k,
    )


def _window_data(arena, runs, dev, values, wd, start, ns0) -> np.ndarray:
    """float32 [W, L, C]: each window's held part from the ring, the rest from the call."""
    cfg = arena.config
    length, ring = cfg.length, arena.ring
    ring_rows = arena.values.reshape(len(arena.values) * ring, -1).view(values.dtype).ravel()
    # Held samples [ns0, count0) of every device that completes a window, unwrapped.
    held = np.maximum(dev.count0 - ns0, 0) * (np.bincount(wd, minlength=len(ns0)) > 0)
    held_at = np.cumsum(held) - held
    lo_col = ns0 % ring
    first_len = np.minimum(held, ring - lo_col)
    starts = np.stack((dev.slots * ring + lo_col, dev.slots * ring), axis=1).ravel()
    lengths = np.stack((first_len, held - first_len), axis=1).ravel()  # per device: two pieces
    held_rows = np.take(ring_rows, _expand_ranges(starts, lengths))
    buf = np.concatenate((held_rows, values))  # [H + N] held samples, then the call's
    h = len(held_rows)
    c0 = dev.count0[wd]
    from_ring = np.clip(c0 - start, 0, length)
    g_lo = np.maximum(start, c0) - dev.shift[wd]
    g_hi = start + length - dev.shift[wd]  # exclusive
    r_lo = np.searchsorted(dev.run_end, g_lo, side="right")
    r_hi = np.searchsorted(dev.run_end, g_hi - 1, side="right")
    pieces = r_hi - r_lo + 1
    pw, pk = _expand(pieces)
    run = r_lo[pw] + pk
    lo = np.maximum(g_lo[pw], dev.run_start[run])
    hi = np.minimum(g_hi[pw], dev.run_end[run])
    slot_at = np.cumsum(pieces + 1) - (pieces + 1)  # each window: its ring piece, then runs
    src = np.empty(len(wd) + len(pw), dtype=np.int64)
    count = np.empty_like(src)
    src[slot_at] = held_at[wd] + (start - ns0[wd])
    count[slot_at] = from_ring
    call_at = slot_at[pw] + 1 + pk
    src[call_at] = h + runs.first[run] + (lo - dev.run_start[run])
    count[call_at] = hi - lo
    data = np.take(buf, _expand_ranges(src, count))
    return data.view(np.float32).reshape(len(wd), length, cfg.channels)


def _write_ring(arena, runs, dev, values, count1, ns1) -> None:
    """Write into the ring the samples each device still needs: from its next window on,
    and at least its newest (gap fill interpolates from it)."""
    ring = arena.ring
    keep_from = np.maximum(np.maximum(dev.count0, count1 - ring), np.minimum(ns1, count1 - 1))
    per_dev = dev.last_run - dev.first_run + 1
    run_index = dev.run_start + np.repeat(dev.shift, per_dev)  # segment index of run starts
    lo = np.maximum(np.repeat(keep_from, per_dev), run_index)
    n = np.maximum(run_index + runs.lengths - lo, 0)
    src = runs.first + (lo - run_index)
    col = lo % ring
    first_len = np.minimum(n, ring - col)
    base = runs.slots * ring
    lengths = np.concatenate((first_len, n - first_len))
    ar = np.arange(int(lengths.sum()))
    src_rows = _expand_ranges(np.concatenate((src, src + first_len)), lengths, ar)
    dst_rows = _expand_ranges(np.concatenate((base + col, base)), lengths, ar)
    ring_rows = arena.values.reshape(len(arena.values) * ring, -1).view(values.dtype).ravel()
    np.put(ring_rows, dst_rows, np.take(values, src_rows))


def _write_window_slots(arena, runs, dev, ts, count1, ns1) -> None:
    """Record start (ts, offset) and anchor ts of windows still open after the call."""
    cfg = arena.config
    hop, slots = cfg.hop, cfg.window_slots
    c0 = dev.count0
    first = np.maximum(ns1, -(-c0 // hop) * hop)  # open windows that start in this call
    n = np.where(count1 > first, (count1 - 1 - first) // hop + 1, 0)
    if n.any():
        d, k = _expand(n)
        start = first[d] + k * hop
        at, run = dev.locate(runs, d, start)
        slot, col = dev.slots[d], (start // hop) % slots
        arena.win_start_ts[slot, col] = ts[at]
        arena.win_start_off[slot, col] = runs.offsets[run]
        arena.win_min_off[slot, col] = runs.offsets[run]
    a = min(hop, cfg.length) - 1
    first = np.maximum(ns1, -(-(c0 - a) // hop) * hop)  # open windows anchored in this call
    n = np.where(count1 - a > first, (count1 - a - 1 - first) // hop + 1, 0)
    if n.any():
        d, k = _expand(n)
        start = first[d] + k * hop
        at, _ = dev.locate(runs, d, start + a)
        arena.win_anchor_ts[dev.slots[d], (start // hop) % slots] = ts[at]


def _write_recent(arena, runs, dev, ts, count1) -> None:
    """Keep each device's last RECENT_INTERVALS + 1 timestamps (gap fill's median)."""
    keep = arena.config.recent_samples
    lo = np.maximum(dev.count0, count1 - keep)
    d, k = _expand(count1 - lo)
    index = lo[d] + k
    at, _ = dev.locate(runs, d, index)
    arena.recent_ts[dev.slots[d], index % keep] = ts[at]


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For per-item counts, the item of every element and its rank within the item."""
    item = np.repeat(np.arange(len(counts)), counts)
    return item, np.arange(len(item)) - np.repeat(np.cumsum(counts) - counts, counts)


def _expand_ranges(
    starts: np.ndarray, lengths: np.ndarray, ar: np.ndarray | None = None
) -> np.ndarray:
    """Concatenated ranges [start, start + length) (ar: arange(lengths.sum()) to reuse)."""
    if ar is None:
        ar = np.arange(int(lengths.sum()))
    return np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + ar
