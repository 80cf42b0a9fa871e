"""The vectorized append: one round writes up to `slack` in-order samples per device.

Every device in a round gets its samples written into its ring with one fancy-index
assignment, its complete windows found with integer arithmetic, and all ready
windows of the round copied out with one gather. No Python runs per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from windows.arena import NO_OFFSET, DeviceArena

#: Keys of the segmented searchsorted must stay below this (int64 headroom).
_KEY_LIMIT = 2**62


@dataclass(frozen=True)
class RoundSamples:
    """The samples of one round, grouped by device in run order (ts increasing per run)."""

    run_slots: np.ndarray  # int64 [R] device slot per run
    run_lengths: np.ndarray  # int64 [R] samples per run (>= 1)
    slots: np.ndarray  # int64 [M] device slot per sample
    ts: np.ndarray  # int64 [M]
    values: np.ndarray  # float32 [M, C]
    offsets: np.ndarray  # int64 [M]
    positions: np.ndarray  # int64 [M] arrival position in the call


@dataclass(frozen=True)
class WindowColumns:
    """Ready windows of one round (or of the slow path), columnar, before ordering."""

    slots: np.ndarray  # int64 [W]
    sources: np.ndarray  # int32 [W]
    data: np.ndarray  # float32 [W, L, C]
    start_ts_ms: np.ndarray
    end_ts_ms: np.ndarray
    anchor_ts_ms: np.ndarray  # see WindowBatch.anchor_ts_ms
    first_offsets: np.ndarray
    last_offsets: np.ndarray
    ready_offsets: np.ndarray
    positions: np.ndarray  # arrival position of the sample that made each window ready
    emit_index: np.ndarray  # per-device emission number (orders ties on position)


def append_round(arena: DeviceArena, rs: RoundSamples) -> WindowColumns | None:
    """Write the round into the rings, advance window state, return the windows now ready."""
    cfg = arena.config
    cap, length, hop = cfg.capacity, cfg.length, cfg.hop
    run_first = np.cumsum(rs.run_lengths) - rs.run_lengths  # [R] first sample of each run
    run_last = run_first + rs.run_lengths - 1
    count0 = arena.count[rs.run_slots]
    rank = np.arange(len(rs.ts)) - np.repeat(run_first, rs.run_lengths)
    index = np.repeat(count0, rs.run_lengths) + rank  # segment index of every sample
    cols = index % cap
    arena.values[rs.slots, cols] = rs.values
    arena.ts[rs.slots, cols] = rs.ts
    arena.offsets[rs.slots, cols] = rs.offsets
    count1 = count0 + rs.run_lengths
    arena.count[rs.run_slots] = count1
    arena.newest_ts[rs.run_slots] = rs.ts[run_last]
    ns0 = arena.next_start[rs.run_slots]
    complete = np.where(count1 - length >= ns0, (count1 - length - ns0) // hop + 1, 0)
    if not complete.any():
        _extend_need(arena, rs, index, ns0)
        return None
    w_run, k = _expand(complete)
    end = ns0[w_run] + k * hop + (length - 1)
    if cfg.reorder_ms == 0:
        ready_at = run_first[w_run] + (end - count0[w_run])
    else:
        w_run, k, end, ready_at = _ready_after_reorder(
            arena, rs, w_run, k, end, run_first, run_last
        )
    n_ready = np.bincount(w_run, minlength=len(rs.run_slots))
    columns = _cut(arena, rs.run_slots[w_run], end - (length - 1), end, rs, ready_at, k)
    ns1 = ns0 + n_ready * hop
    arena.next_start[rs.run_slots] = ns1
    arena.emitted[rs.run_slots] += n_ready
    advanced = n_ready > 0
    last_window = np.cumsum(n_ready)[advanced] - 1
    arena.last_end_ts[rs.run_slots[advanced]] = columns.end_ts_ms[last_window]
    _refresh_need(arena, rs.run_slots[advanced], count1[advanced], ns1[advanced])
    still = ~np.repeat(advanced, rs.run_lengths)
    _extend_need(arena, rs, index, ns1, still)
    return columns


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For per-run counts, the run of every item and its rank within the run."""
    run = np.repeat(np.arange(len(counts)), counts)
    rank = np.arange(len(run)) - np.repeat(np.cumsum(counts) - counts, counts)
    return run, rank


def _ready_after_reorder(arena, rs, w_run, k, end, run_first, run_last):
    """Keep complete windows whose end + reorder_ms the newest sample reached; find that sample."""
    cfg = arena.config
    threshold = arena.ts[rs.run_slots[w_run], end % cfg.capacity] + cfg.reorder_ms
    ok = threshold <= rs.ts[run_last][w_run]
    w_run, k, end, threshold = w_run[ok], k[ok], end[ok], threshold[ok]
    t_min = int(rs.ts.min())
    span = int(rs.ts.max()) - t_min + 1
    if len(rs.run_slots) * span < _KEY_LIMIT:
        keys = np.repeat(np.arange(len(rs.run_slots)), rs.run_lengths) * span + (rs.ts - t_min)
        wanted = w_run * span + np.clip(threshold - t_min, 0, span - 1)
        ready_at = np.searchsorted(keys, wanted, side="left")
    else:
        ready_at = np.array(
            [
                run_first[r]
                + np.searchsorted(rs.ts[run_first[r] : run_last[r] + 1], t, side="left")
                for r, t in zip(w_run.tolist(), threshold.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
    return w_run, k, end, ready_at


def _cut(arena, w_slots, start, end, rs, ready_at, k) -> WindowColumns:
    """Copy the windows [start, end] (segment indices) of devices w_slots out of the rings."""
    cfg = arena.config
    cap, length, channels = cfg.capacity, cfg.length, cfg.channels
    start_col, end_col = start % cap, end % cap
    flat = (w_slots * cap)[:, None] + (start_col[:, None] + np.arange(length)) % cap  # [W, L]
    data = np.take(arena.values.reshape(-1, channels), flat.ravel(), axis=0)
    return WindowColumns(
        slots=w_slots,
        sources=arena.source[w_slots],
        data=data.reshape(len(w_slots), length, channels),
        start_ts_ms=arena.ts[w_slots, start_col],
        end_ts_ms=arena.ts[w_slots, end_col],
        anchor_ts_ms=arena.ts[w_slots, (start + _anchor_index(cfg)) % cap],
        first_offsets=arena.offsets[w_slots, start_col],
        last_offsets=arena.offsets[w_slots, end_col],
        ready_offsets=rs.offsets[ready_at],
        positions=rs.positions[ready_at],
        emit_index=arena.emitted[w_slots] + k,
    )


def _refresh_need(
    arena: DeviceArena, slots: np.ndarray, count: np.ndarray, next_start: np.ndarray
) -> None:
    """Recompute the smallest held offset of devices whose next window moved."""
    if not len(slots):
        return
    cap = arena.config.capacity
    col = np.arange(cap)
    index = count[:, None] - cap + (col[None, :] - count[:, None]) % cap  # [K, cap]
    held = (index >= next_start[:, None]) & (index >= 0)
    arena.need_offset[slots] = np.where(held, arena.offsets[slots], NO_OFFSET).min(axis=1)


def _extend_need(
    arena: DeviceArena,
    rs: RoundSamples,
    index: np.ndarray,
    next_start: np.ndarray,
    only: np.ndarray | None = None,
) -> None:
    """Lower the held-offset minimum by the new samples that belong to an unfinished window."""
    keep = index >= np.repeat(next_start, rs.run_lengths)
    if only is not None:
        keep &= only
    if keep.all():
        np.minimum.at(arena.need_offset, rs.slots, rs.offsets)
    elif keep.any():
        np.minimum.at(arena.need_offset, rs.slots[keep], rs.offsets[keep])


def append_device_run(
    arena: DeviceArena, slot: int, ts: np.ndarray, values: np.ndarray, source: int, offset: int
) -> WindowColumns | tuple | None | Literal[False]:
    """One device's chunk with scalar bookkeeping; False when it needs the general path.

    Takes in-order samples that share one offset, for a device that already has
    samples from this source, when the ring has room for all of them. Returns the
    ready windows as columns, or as one row tuple (see WindowBatch.from_rows, without
    the device id) when there is exactly one, or None.
    """
    if not _chunk_fits(arena, slot, ts, source):
        return False
    cfg = arena.config
    count0, n = int(arena.count[slot]), len(ts)
    col0 = count0 % arena.cap
    head = min(n, arena.cap - col0)
    for dst, src in ((col0, slice(0, head)), (0, slice(head, n))):
        if src.start < src.stop:
            arena.values[slot, dst : dst + src.stop - src.start] = values[src]
            arena.ts[slot, dst : dst + src.stop - src.start] = ts[src]
            arena.offsets[slot, dst : dst + src.stop - src.start] = offset
    count1 = count0 + n
    arena.count[slot] = count1
    arena.newest_ts[slot] = ts[-1]
    ns0 = int(arena.next_start[slot])
    if count1 - cfg.length < ns0:
        if count1 > ns0:
            arena.need_offset[slot] = min(int(arena.need_offset[slot]), offset)
        return None
    return _chunk_windows(arena, slot, ns0, count1, int(ts[-1]), source, offset)


def _chunk_fits(arena: DeviceArena, slot: int, ts: np.ndarray, source: int) -> bool:
    """True if the samples continue the device in order, without gaps, and fit its ring."""
    cfg = arena.config
    count0 = int(arena.count[slot])
    step0 = int(ts[0]) - int(arena.newest_ts[slot])
    if (
        count0 == 0
        or int(arena.source[slot]) != source
        or not 0 < step0 <= cfg.gap_ms
        or count0 + len(ts) - arena.cap > int(arena.next_start[slot])
    ):
        return False
    if len(ts) > 1:
        steps = np.subtract(ts[1:], ts[:-1])
        steps -= 1  # in [0, gap_ms) exactly when the step is in (0, gap_ms]
        if steps.view(np.uint64).max() >= cfg.gap_ms:
            return False
    return True


def _chunk_windows(
    arena: DeviceArena, slot: int, ns0: int, count1: int, newest: int, source: int, offset: int
) -> WindowColumns | tuple | None:
    """Cut the device's ready windows after a chunk; every one was readied by the chunk's offset."""
    cfg = arena.config
    cap, length, hop = arena.cap, cfg.length, cfg.hop
    ts_row, off_row = arena.ts[slot], arena.offsets[slot]
    starts: Sequence[int] = range(ns0, count1 - length + 1, hop)
    if cfg.reorder_ms:
        wait_ms = cfg.reorder_ms
        starts = [s for s in starts if int(ts_row[(s + length - 1) % cap]) + wait_ms <= newest]
        if not starts:  # complete windows still wait: the chunk's samples are held too
            arena.need_offset[slot] = min(int(arena.need_offset[slot]), offset)
            return None
    w = len(starts)
    if w == 1:
        return _one_window(arena, slot, starts[0], count1, source, offset)
    start_col = np.array([s % cap for s in starts], dtype=np.int64)
    end_col = (start_col + (length - 1)) % cap
    emitted = int(arena.emitted[slot])
    ready = np.array([offset] * w, dtype=np.int64)
    columns = WindowColumns(
        slots=np.array([slot] * w, dtype=np.int64),
        sources=np.array([source] * w, dtype=np.int32),
        data=_ring_windows(arena.values, slot, start_col, hop, length),
        start_ts_ms=ts_row[start_col],
        end_ts_ms=ts_row[end_col],
        anchor_ts_ms=ts_row[(start_col + _anchor_index(arena.config)) % cap],
        first_offsets=off_row[start_col],
        last_offsets=off_row[end_col],
        ready_offsets=ready,
        positions=ready,
        emit_index=np.arange(emitted, emitted + w),
    )
    ns1 = starts[-1] + hop
    arena.next_start[slot] = ns1
    arena.emitted[slot] = emitted + w
    arena.last_end_ts[slot] = columns.end_ts_ms[-1]
    arena.need_offset[slot] = _ring_min(off_row, ns1, count1)
    return columns


def _one_window(
    arena: DeviceArena, slot: int, start: int, count: int, source: int, offset: int
) -> tuple:
    """Cut the single window at segment index start as a row; advance the device past it."""
    cap, length = arena.cap, arena.config.length
    ts_row, off_row = arena.ts[slot], arena.offsets[slot]
    col = start % cap
    end_col = (col + length - 1) % cap
    if col + length <= cap:
        data = arena.values[slot, col : col + length].copy()  # [L, C]
    else:
        data = np.concatenate((arena.values[slot, col:], arena.values[slot, : end_col + 1]))
    end_ts = int(ts_row[end_col])
    ns1 = start + arena.config.hop
    arena.next_start[slot] = ns1
    arena.emitted[slot] += 1
    arena.last_end_ts[slot] = end_ts
    arena.need_offset[slot] = _ring_min(off_row, ns1, count)
    anchor_ts = int(ts_row[(col + _anchor_index(arena.config)) % cap])
    return (
        data,
        int(ts_row[col]),
        end_ts,
        source,
        int(off_row[col]),
        int(off_row[end_col]),
        offset,
        anchor_ts,
    )


def _anchor_index(config) -> int:
    """Index in a window of its anchor sample (the last one before the next window)."""
    return min(config.hop, config.length) - 1


def _ring_windows(
    values: np.ndarray, slot: int, start_col: np.ndarray, hop: int, length: int
) -> np.ndarray:
    """Copy one device's windows at ring columns start_col (hop apart) out of values [D, cap, C]."""
    cap, channels = values.shape[1], values.shape[2]
    w = len(start_col)
    first = int(start_col[0])
    if first + (w - 1) * hop + length <= cap:  # no window wraps: one strided copy
        item = values.itemsize
        view = np.ndarray(
            (w, length, channels),
            dtype=values.dtype,
            buffer=values,
            offset=(slot * cap + first) * channels * item,
            strides=(hop * channels * item, channels * item, item),
        )
        return view.copy()  # [W, L, C]
    rows = (start_col[:, None] + np.arange(length)) % cap  # [W, L]
    return np.take(values[slot], rows, axis=0)


def _ring_min(ring: np.ndarray, lo: int, hi: int) -> int:
    """Smallest value at segment indices [lo, hi) of a ring row holding indices [hi - cap, hi)."""
    if hi <= lo:
        return int(NO_OFFSET)
    cap = ring.shape[0]
    col = lo % cap
    if col + (hi - lo) <= cap:
        return int(ring[col : col + hi - lo].min())
    return int(min(ring[col:].min(), ring[: col + hi - lo - cap].min()))
