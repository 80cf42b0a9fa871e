"""The scalar path for one clean run of a known device on the compact layout (append_chunk).

A call with one record does not pay for grouping: its windows are cut from the held
ring samples followed by the run (one sliding-window copy), its tail is written into
the ring with at most two slice assignments.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from windows.arena import NO_OFFSET, CompactArena
from windows.fastpath import WindowColumns


def append_single_run(
    arena: CompactArena, slot: int, ts: np.ndarray, rows: np.ndarray, source: int, offset: int
) -> WindowColumns | tuple | None | Literal[False]:
    """One clean run of a known device with scalar bookkeeping (ts [n], rows void [n]).

    Returns False when the run is not clean (the general path takes it), else the
    windows it readied: columns (positions index the run), one row tuple (see
    WindowBatch.from_rows, without the device id) when there is exactly one, or None.
    """
    cfg = arena.config
    c0 = int(arena.count[slot])
    if (
        c0 == 0
        or int(arena.source[slot]) != source
        or offset < int(arena.last_offset[slot])
        or not 0 < int(ts[0]) - int(arena.newest_ts[slot]) <= cfg.gap_ms
    ):
        return False
    n = len(ts)
    if n > 1:
        steps = np.subtract(ts[1:], ts[:-1])
        steps -= 1  # in [0, gap_ms) exactly when the step is in (0, gap_ms]
        if steps.view(np.uint64).max() >= cfg.gap_ms:
            return False
    length, hop, ring = cfg.length, cfg.hop, arena.ring
    c1 = c0 + n
    ns0 = int(arena.next_start[slot])
    columns = None
    ns1 = ns0
    if c1 - length >= ns0:
        columns = _single_run_windows(arena, slot, ts, rows, offset, c0, ns0)
        ns1 = ns0 + (1 if isinstance(columns, tuple) else len(columns.slots)) * hop
    keep = max(c0, c1 - ring, min(ns1, c1 - 1))
    col = keep % ring
    head = min(c1 - keep, ring - col)
    ring_rows = arena.rows[slot]
    ring_rows[col : col + head] = rows[keep - c0 : keep - c0 + head]
    ring_rows[: c1 - keep - head] = rows[keep - c0 + head :]
    _single_run_window_slots(arena, slot, ts, offset, c0, c1, ns1)
    arena.count[slot] = c1
    arena.next_start[slot] = ns1
    arena.newest_ts[slot] = ts[-1]
    arena.last_offset[slot] = offset
    w = (ns1 // hop) % cfg.window_slots
    arena.need_offset[slot] = arena.win_min_off[slot, w] if ns1 < c1 else NO_OFFSET
    return columns


def _single_run_windows(arena, slot, ts, rows, offset, c0, ns0) -> WindowColumns | tuple:
    """The windows one run completes, cut from the held ring samples followed by the run."""
    cfg = arena.config
    length, hop, ring = cfg.length, cfg.hop, arena.ring
    c1 = c0 + len(ts)
    if c1 - length < ns0 + hop:
        return _single_window(arena, slot, ts, rows, offset, c0, ns0)
    start = np.arange(ns0, c1 - length + 1, hop)
    if ns0 < c0:  # the held samples [ns0, c0), unwrapped, then the run
        ring_rows = arena.rows[slot]
        col = ns0 % ring
        head = min(c0 - ns0, ring - col)
        joined = np.concatenate((ring_rows[col : col + head], ring_rows[: c0 - ns0 - head], rows))
        base = ns0
    else:
        joined, base = rows, c0
    data = np.lib.stride_tricks.sliding_window_view(joined, length)[start - base]  # [W, L]
    end = start + (length - 1)
    anchor = start + (min(hop, length) - 1)
    col = (start // hop) % cfg.window_slots
    in_call = start >= c0
    w = len(start)
    emitted = int(arena.emitted[slot])
    arena.emitted[slot] = emitted + w
    ready = np.full(w, offset, dtype=np.int64)
    return WindowColumns(
        slots=np.full(w, slot, dtype=np.int64),
        sources=np.full(w, arena.source[slot], dtype=np.int32),
        data=data.view(np.float32).reshape(w, length, cfg.channels),
        start_ts_ms=np.where(in_call, ts[np.maximum(start - c0, 0)], arena.win_start_ts[slot, col]),
        end_ts_ms=ts[end - c0],
        anchor_ts_ms=np.where(
            anchor >= c0, ts[np.maximum(anchor - c0, 0)], arena.win_anchor_ts[slot, col]
        ),
        first_offsets=np.where(in_call, offset, arena.win_start_off[slot, col]),
        last_offsets=ready,
        ready_offsets=ready,
        positions=end - c0,
        emit_index=np.arange(emitted, emitted + w),
    )


def _single_window(arena, slot, ts, rows, offset, c0, ns0) -> tuple:
    """The one window a run completes, as a row (WindowBatch.from_rows without the id)."""
    cfg = arena.config
    length, ring = cfg.length, arena.ring
    if ns0 < c0:
        ring_rows = arena.rows[slot]
        col = ns0 % ring
        head = min(c0 - ns0, ring - col)
        data = np.concatenate(
            (ring_rows[col : col + head], ring_rows[: c0 - ns0 - head], rows[: ns0 + length - c0])
        )
    else:
        data = rows[ns0 - c0 : ns0 - c0 + length].copy()
    w = (ns0 // cfg.hop) % cfg.window_slots
    anchor = ns0 + min(cfg.hop, length) - 1
    if ns0 >= c0:
        start_ts, first_offset = int(ts[ns0 - c0]), offset
    else:
        start_ts, first_offset = int(arena.win_start_ts[slot, w]), int(arena.win_start_off[slot, w])
    anchor_ts = int(ts[anchor - c0]) if anchor >= c0 else int(arena.win_anchor_ts[slot, w])
    arena.emitted[slot] += 1
    return (
        data.view(np.float32).reshape(length, cfg.channels),
        start_ts,
        int(ts[ns0 + length - 1 - c0]),
        int(arena.source[slot]),
        first_offset,
        offset,
        offset,
        anchor_ts,
    )


def _single_run_window_slots(arena, slot, ts, offset, c0, c1, ns1) -> None:
    """Start, anchor and recent timestamps of one run's device, for windows still open."""
    cfg = arena.config
    hop, slots = cfg.hop, cfg.window_slots
    first = max(ns1, -(-c0 // hop) * hop)
    if first < c1:
        start = np.arange(first, c1, hop)
        col = (start // hop) % slots
        arena.win_start_ts[slot, col] = ts[start - c0]
        arena.win_start_off[slot, col] = offset
        arena.win_min_off[slot, col] = offset
    a = min(hop, cfg.length) - 1
    first = max(ns1, -(-(c0 - a) // hop) * hop)
    if first + a < c1:
        start = np.arange(first, c1 - a, hop)
        arena.win_anchor_ts[slot, (start // hop) % slots] = ts[start + a - c0]
    keep = cfg.recent_samples
    if keep:
        index = np.arange(max(c0, c1 - keep), c1)
        arena.recent_ts[slot, index % keep] = ts[index - c0]
