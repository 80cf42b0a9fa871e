"""The per-sample layout's append (reorder_ms > 0): vectorized rounds, then Timeline.

A call is grouped by device (a stable sort of its samples); devices whose samples
continue them in order, without gaps, from their source go through rounds of up to
``slack`` samples each (fastpath.append_round); the rest, and whatever a round could
not take without overwriting a waiting window, go sample by sample through
policies.Timeline.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from windows.arena import NEVER, DeviceArena
from windows.config import WindowConfig
from windows.fastpath import RoundSamples, WindowColumns, append_round
from windows.policies import EmittedWindow, Timeline


class SamplePath:
    """Appends of one store in the per-sample layout."""

    def __init__(self, config: WindowConfig, arena: DeviceArena, counters: Counter[str]) -> None:
        self.config = config
        self.arena = arena
        self.counters = counters

    def apply(
        self, slots: np.ndarray, ts: np.ndarray, vals: np.ndarray, src: np.ndarray, off: np.ndarray
    ) -> tuple[list[WindowColumns], list[tuple[int, str]], np.ndarray, np.ndarray]:
        """Append a call's samples: (window parts, rejected, device slots, last positions).

        slots [N] int64, ts [N] int64, vals [N, C] float32, src [N] int32, off [N] int64.
        """
        n = len(slots)
        if n > 1 and (slots[1:] != slots[:-1]).any():
            order = np.argsort(slots, kind="stable")
            slots, ts, vals, src, off = slots[order], ts[order], vals[order], src[order], off[order]
        else:
            order = np.arange(n)
        starts = np.flatnonzero(np.concatenate(([True], slots[1:] != slots[:-1])))
        run_slots = slots[starts]
        run_lengths = np.diff(starts, append=n)
        parts: list[WindowColumns] = []
        rejected: list[tuple[int, str]] = []
        slow_from = self._fast_rounds(
            slots, ts, vals, src, off, order, starts, run_slots, run_lengths, parts
        )
        self._slow_runs(
            slots, ts, vals, src, off, order, starts, run_lengths, slow_from, parts, rejected
        )
        return parts, rejected, run_slots, order[starts + run_lengths - 1]

    def _fast_rounds(self, slots, ts, vals, src, off, order, starts, run_slots, run_lengths, parts):
        """Run clean runs through vectorized rounds; return per run the rank the slow path takes."""
        arena, cfg = self.arena, self.config
        fresh = arena.count[run_slots] == 0
        prev = np.empty_like(ts)
        prev[1:] = ts[:-1]
        prev[starts] = np.where(fresh, ts[starts] - 1, arena.newest_ts[run_slots])
        step = ts - prev
        owner = np.where(fresh, src[starts], arena.source[run_slots])
        bad = (step <= 0) | (step > cfg.gap_ms) | (src != np.repeat(owner, run_lengths))
        clean = ~np.logical_or.reduceat(bad, starts)
        slow_from = np.where(clean, run_lengths, 0)  # sample rank where the slow path takes over
        born = clean & fresh
        if born.any():
            arena.set_sources(run_slots[born], src[starts[born]])
            arena.seg_floor_ts[run_slots[born]] = ts[starts[born]]
            arena.last_end_ts[run_slots[born]] = NEVER
        slack = cfg.slack
        for k in range(int(-(-run_lengths.max() // slack))):
            take = np.minimum(slow_from - k * slack, slack)
            live = np.flatnonzero(take > 0)
            if cfg.reorder_ms and len(live):
                rs_slots = run_slots[live]
                unsafe = (
                    arena.count[rs_slots] + take[live] - cfg.capacity > arena.next_start[rs_slots]
                )
                slow_from[live[unsafe]] = k * slack
                live = live[~unsafe]
            if not len(live):
                continue
            if k == 0 and len(live) == len(run_slots) and (take == run_lengths).all():
                sel = slice(None)
            else:
                first = starts[live] + k * slack
                rr, rank = _ranks(take[live])
                sel = first[rr] + rank
            columns = append_round(
                arena,
                RoundSamples(
                    run_slots[live],
                    take[live],
                    slots[sel],
                    ts[sel],
                    vals[sel],
                    off[sel],
                    order[sel],
                ),
            )
            if columns is not None:
                parts.append(columns)
                self.counters["windows"] += len(columns.slots)
        return slow_from

    def _slow_runs(
        self,
        slots: np.ndarray,
        ts: np.ndarray,
        vals: np.ndarray,
        src: np.ndarray,
        off: np.ndarray,
        order: np.ndarray,
        starts: np.ndarray,
        run_lengths: np.ndarray,
        slow_from: np.ndarray,
        parts: list[WindowColumns],
        rejected: list[tuple[int, str]],
    ) -> None:
        """Apply the rules one sample at a time to the runs (or run tails) the fast path left."""
        sink: list[EmittedWindow] = []
        for r in np.flatnonzero(slow_from < run_lengths).tolist():
            lo, hi = int(starts[r] + slow_from[r]), int(starts[r] + run_lengths[r])
            timeline = Timeline(self.config, self.arena, int(slots[lo]), self.counters, sink)
            for i, t, s, o, p in zip(
                range(lo, hi),
                ts[lo:hi].tolist(),
                src[lo:hi].tolist(),
                off[lo:hi].tolist(),
                order[lo:hi].tolist(),
                strict=True,
            ):
                timeline.process(t, vals[i], s, o, p)
            timeline.write_back(self.arena)
            rejected.extend(timeline.rejected)
        if sink:
            parts.append(columns_of(sink, self.config))


def _ranks(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    run = np.repeat(np.arange(len(counts)), counts)
    return run, np.arange(len(run)) - np.repeat(np.cumsum(counts) - counts, counts)


def columns_of(sink: list[EmittedWindow], config: WindowConfig) -> WindowColumns:
    """The slow path's windows as columns."""

    def col(name: str, dtype) -> np.ndarray:
        return np.array([getattr(w, name) for w in sink], dtype=dtype)

    return WindowColumns(
        slots=col("slot", np.int64),
        sources=col("source", np.int32),
        data=np.stack([w.data for w in sink]).reshape(len(sink), config.length, config.channels),
        start_ts_ms=col("start_ts_ms", np.int64),
        end_ts_ms=col("end_ts_ms", np.int64),
        anchor_ts_ms=col("anchor_ts_ms", np.int64),
        first_offsets=col("first_offset", np.int64),
        last_offsets=col("last_offset", np.int64),
        ready_offsets=col("ready_offset", np.int64),
        positions=col("position", np.int64),
        emit_index=col("emit_index", np.int64),
    )
