"""WindowStore: per-device ring buffers and sliding windows for many devices at once."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from windows.arena import NO_OFFSET, CompactArena, DeviceArena
from windows.batch import WindowBatch
from windows.compact import Runs, append_clean, dirty_runs
from windows.compact_single import append_single_run
from windows.compact_timeline import CompactTimeline
from windows.config import WindowConfig
from windows.errors import WindowError
from windows.fastpath import WindowColumns, append_device_run
from windows.inputs import check_runs, check_samples, increasing, runs_of_samples
from windows.policies import EmittedWindow
from windows.sample_path import SamplePath, columns_of

log = logging.getLogger(__name__)

#: Every counter the store keeps, reported even when zero.
COUNTER_NAMES = (
    "duplicates",
    "late",
    "reordered",
    "gaps_reset",
    "gaps_filled",
    "samples_filled",
    "source_moves",
    "evicted_idle",
    "evicted_lru",
    "dropped_rebalance",
    "windows",
    "windows_forced",
)


@dataclass(frozen=True)
class Rejected:
    """Samples of one append call that a policy dropped: positions in the call's arrays."""

    positions: np.ndarray  # int64 [K], ascending
    reasons: list[str]  # [K] "duplicates" | "late" (the counter each one went to)

    def __len__(self) -> int:
        return len(self.positions)


NOTHING_REJECTED = Rejected(np.zeros(0, dtype=np.int64), [])


class WindowStore:
    """Ring buffers for up to max_devices devices; cuts count-based windows (length L, hop H).

    A device belongs to one source (the worker's id for a topic-partition); if its
    samples arrive from another source, the newest source wins and the device restarts
    from that sample (its partial window is dropped, counted as ``source_moves``).
    Least-recently-updated eviction is decided per call: devices in the call are never
    evicted by it, so one call may not name more than max_devices devices. With
    reorder_ms == 0 the store keeps the compact layout (see windows.arena) and every
    append goes through runs; otherwise the per-sample layout.
    """

    def __init__(self, config: WindowConfig) -> None:
        self.config = config
        self._counters: Counter[str] = Counter()
        # the layout is fixed here: the compact paths assert CompactArena, the others DeviceArena
        self._arena: CompactArena | DeviceArena
        self._samples: SamplePath | None = None  # the per-sample layout's rules
        if config.compact:
            self._arena = CompactArena(config)
        else:
            self._arena = DeviceArena(config)
            self._samples = SamplePath(config, self._arena, self._counters)
        self._out: list[WindowBatch | list[tuple]] = []  # batches, or rows of single windows
        self._seq = 0
        self._rejected: list[tuple[int, str]] = []

    # -- appends ----------------------------------------------------------------
    def append_bulk(
        self,
        device_ids: Sequence[str],
        timestamps_ms: np.ndarray,
        values: np.ndarray,
        sources: np.ndarray,
        offsets: np.ndarray,
        now_ms: int | None = None,
    ) -> Rejected:
        """Append N samples of many devices in arrival order (ts [N] int64, values [N, C]).

        Returns the samples dropped as duplicates or late, so a caller can say which
        records they came from; they are counted either way.
        """
        ts, vals, src, off = check_samples(
            self.config.channels, len(device_ids), timestamps_ms, values, sources, offsets
        )
        self._rejected = []
        if len(ts):
            self._seq += 1
            slots = self._resolve(device_ids)
            if self.config.compact:
                self._append_compact(*runs_of_samples(slots, src, off), ts, vals, now_ms)
            else:
                self._apply(slots, ts, vals, src, off, now_ms)
        return self._take_rejected()

    def append_runs(
        self,
        device_ids: Sequence[str],
        run_lengths: np.ndarray,
        timestamps_ms: np.ndarray,
        values: np.ndarray,
        sources: np.ndarray,
        offsets: np.ndarray,
        now_ms: int | None = None,
    ) -> Rejected:
        """Append R runs back to back in arrival order; a run is samples of one device, source
        and offset (one record). run_lengths, sources (int32) and offsets (int64) are [R];
        timestamps [N] and values [N, C] with N = run_lengths.sum(). Same result as
        append_bulk on the per-sample expansion; rejected positions index the N samples.
        """
        lengths, src, off = check_runs(len(device_ids), run_lengths, sources, offsets)
        n = int(lengths.sum())
        ts, vals, _, _ = check_samples(
            self.config.channels, n, timestamps_ms, values, np.zeros(n), np.zeros(n)
        )
        if not self.config.compact:
            ids = np.repeat(np.asarray(device_ids, dtype=object), lengths).tolist()
            return self.append_bulk(
                ids, ts, vals, np.repeat(src, lengths), np.repeat(off, lengths), now_ms
            )
        self._rejected = []
        if n:
            self._seq += 1
            slots = self._resolve(device_ids)
            self._append_compact(
                slots, lengths, np.cumsum(lengths) - lengths, src, off, ts, vals, now_ms
            )
        return self._take_rejected()

    def append_one(
        self,
        device_id: str,
        timestamp_ms: int,
        values: np.ndarray,
        source: int,
        offset: int,
        now_ms: int | None = None,
    ) -> None:
        """Append one sample (values float32 [C])."""
        self.append_bulk(
            [device_id],
            np.array([timestamp_ms], dtype=np.int64),
            np.asarray(values, dtype=np.float32).reshape(1, -1),
            np.array([source], dtype=np.int32),
            np.array([offset], dtype=np.int64),
            now_ms,
        )

    def append_chunk(
        self,
        device_id: str,
        timestamps_ms: np.ndarray,
        values: np.ndarray,
        source: int,
        offset: int,
        now_ms: int | None = None,
    ) -> None:
        """Append n samples of one device that came in one record (ts [n], values [n, C])."""
        n = len(timestamps_ms)
        ts = np.asarray(timestamps_ms, dtype=np.int64)
        vals = np.asarray(values, dtype=np.float32)
        if vals.shape != (n, self.config.channels):
            check_samples(self.config.channels, n, ts, vals, np.zeros(n), np.zeros(n))
        if not n:
            return
        if self.config.compact:
            slot = self._arena.slot_of.get(device_id)
            if slot is not None and vals.flags.c_contiguous:
                self._seq += 1
                rows = vals.view(np.dtype((np.void, 4 * vals.shape[1]))).ravel()
                if self._single_run(slot, ts, rows, source, offset, now_ms):
                    return
                self._seq -= 1  # the general path below counts this call
            self.append_runs(
                (device_id,),
                np.array([n], dtype=np.int64),
                ts,
                vals,
                np.array([source], dtype=np.int32),
                np.array([offset], dtype=np.int64),
                now_ms,
            )
            return
        self._seq += 1
        arena = self._arena
        assert isinstance(arena, DeviceArena)
        slot = arena.slot_of.get(device_id)
        if slot is not None:
            columns = append_device_run(arena, slot, ts, vals, source, offset)
            if columns is not False:
                self._queue_scalar(device_id, columns)
                arena.touch[slot] = self._seq << 32 | (n - 1)
                arena.last_seen_ms[slot] = ts[-1] if now_ms is None else now_ms
                return
        slots = self._resolve((device_id,))
        self._apply(
            np.repeat(slots, n),
            ts,
            vals,
            np.full(n, source, dtype=np.int32),
            np.full(n, offset, dtype=np.int64),
            now_ms,
        )

    # -- output and commit support -----------------------------------------------
    def ready_windows(self) -> WindowBatch:
        """Drain the windows that became ready, in the order they became ready."""
        if not self._out:
            return WindowBatch.empty(self.config.length, self.config.channels)
        batch = WindowBatch.concat(
            [WindowBatch.from_rows(part) if isinstance(part, list) else part for part in self._out]
        )
        self._out = []
        return batch

    def low_watermarks(self) -> dict[int, int]:
        """Source -> smallest offset still needed by an unfinished window; absent if none."""
        arena = self._arena
        held = arena.active & (arena.need_offset != NO_OFFSET)
        sources, needs = arena.source[held], arena.need_offset[held]
        if not len(sources):
            return {}
        if sources.min() >= 0 and sources.max() < 1 << 20:
            low = np.full(int(sources.max()) + 1, NO_OFFSET, dtype=np.int64)
            np.minimum.at(low, sources, needs)
            present = np.flatnonzero(low != NO_OFFSET)
            return dict(zip(present.tolist(), low[present].tolist(), strict=True))
        order = np.lexsort((needs, sources))
        first = np.flatnonzero(np.r_[True, np.diff(sources[order]) != 0])
        return dict(zip(sources[order][first].tolist(), needs[order][first].tolist(), strict=True))

    # -- lifecycle ---------------------------------------------------------------
    def evict_idle(self, now_ms: int) -> int:
        """Forget devices silent for more than idle_ms (event time, or their call's now_ms)."""
        arena = self._arena
        idle = np.flatnonzero(arena.active & (now_ms - arena.last_seen_ms > self.config.idle_ms))
        freed = arena.release(idle.tolist())
        self._counters["evicted_idle"] += freed
        if freed:
            log.info("evicted idle devices count=%d now_ms=%d", freed, now_ms)
        return freed

    def drop_sources(self, sources: Iterable[int]) -> int:
        """Forget every device of these sources (a rebalance); cost ~ their device count."""
        freed = self._arena.release(self._arena.slots_of_sources(set(sources)).tolist())
        self._counters["dropped_rebalance"] += freed
        return freed

    @property
    def counters(self) -> dict[str, int]:
        """Everything dropped, changed or emitted so far, by reason."""
        return {name: int(self._counters[name]) for name in COUNTER_NAMES}

    @property
    def active_devices(self) -> int:
        """Devices currently held."""
        return self._arena.active_devices

    def memory_bytes(self) -> int:
        """Bytes reserved for rings and device state: max_devices x bytes_per_device."""
        return self._arena.memory_bytes()

    def bytes_per_device(self) -> int:
        """Bytes of ring buffer and state one device occupies."""
        return self.config.bytes_per_device

    # -- internals ---------------------------------------------------------------
    def _take_rejected(self) -> Rejected:
        if not self._rejected:
            return NOTHING_REJECTED
        self._rejected.sort()
        return Rejected(
            np.array([p for p, _ in self._rejected], dtype=np.int64),
            [reason for _, reason in self._rejected],
        )

    def _append_compact(self, slots, lengths, first, src, off, ts, vals, now_ms) -> None:
        """Clean devices through the vectorized runs, the rest through CompactTimeline."""
        arena = self._arena
        assert isinstance(arena, CompactArena)
        rows = np.ascontiguousarray(vals).view(np.dtype((np.void, 4 * vals.shape[1]))).ravel()
        if len(slots) == 1 and self._single_run(
            int(slots[0]), ts, rows, int(src[0]), int(off[0]), now_ms
        ):
            return
        runs = Runs.grouped(slots, lengths, first, src, off)
        dirty = dirty_runs(arena, runs, ts)
        parts: list[WindowColumns] = []
        clean = runs
        if dirty.any():
            parts = self._compact_slow(runs.select(dirty), ts, vals)
            clean = runs.select(~dirty)
        if len(clean.slots):
            columns = append_clean(arena, clean, ts, rows)
            if columns is not None:
                self._counters["windows"] += len(columns.slots)
                parts.append(columns)
        self._collect(parts)
        ends = runs.device_ends
        dev = runs.slots[ends]
        arena.touch[dev] = (self._seq << 32) | (runs.first[ends] + runs.lengths[ends] - 1)
        arena.last_seen_ms[dev] = arena.newest_ts[dev] if now_ms is None else now_ms

    def _single_run(self, slot: int, ts, rows, source: int, offset: int, now_ms) -> bool:
        """One run of a known device through the scalar path; False if it is not clean."""
        arena = self._arena
        assert isinstance(arena, CompactArena)
        columns = append_single_run(arena, slot, ts, rows, source, offset)
        if columns is False:
            return False
        self._queue_scalar(arena.names[slot], columns)
        arena.touch[slot] = self._seq << 32 | (len(ts) - 1)
        arena.last_seen_ms[slot] = ts[-1] if now_ms is None else now_ms
        return True

    def _compact_slow(self, runs: Runs, ts, vals) -> list[WindowColumns]:
        """Dirty devices of a call, one sample at a time, each device's runs in arrival order."""
        arena = self._arena
        assert isinstance(arena, CompactArena)
        sink: list[EmittedWindow] = []
        starts = runs.device_starts
        for a, b in zip(starts.tolist(), (runs.device_ends + 1).tolist(), strict=True):
            timeline = CompactTimeline(self.config, arena, int(runs.slots[a]), self._counters, sink)
            for r in range(a, b):
                lo = int(runs.first[r])
                hi = lo + int(runs.lengths[r])
                source, offset = int(runs.sources[r]), int(runs.offsets[r])
                for p, t in zip(range(lo, hi), ts[lo:hi].tolist(), strict=True):
                    timeline.process(t, vals[p], source, offset, p)
            timeline.write_back()
            self._rejected.extend(timeline.rejected)
        return [columns_of(sink, self.config)] if sink else []

    def _resolve(self, device_ids: Sequence[str]) -> np.ndarray:
        """Slot of every sample's device, making room for new devices by LRU eviction."""
        arena = self._arena
        slot_of = arena.slot_of
        distinct = dict.fromkeys(device_ids)
        if len(distinct) > self.config.max_devices:
            raise WindowError(
                f"one call names {len(distinct)} devices but max_devices="
                f"{self.config.max_devices}; raise max_devices or append fewer records per call"
            )
        new = [d for d in distinct if d not in slot_of]
        if new:
            excess = arena.active_devices + len(new) - self.config.max_devices
            if excess > 0:
                keep = np.array([slot_of[d] for d in distinct if d in slot_of], dtype=np.int64)
                freed = arena.release(arena.lru_victims(excess, keep).tolist())
                self._counters["evicted_lru"] += freed
            for d in new:
                arena.allocate(d)
        return np.fromiter(
            map(slot_of.__getitem__, device_ids), dtype=np.int64, count=len(device_ids)
        )

    def _apply(self, slots, ts, vals, src, off, now_ms) -> None:
        """The per-sample layout: see windows.sample_path."""
        assert self._samples is not None
        parts, rejected, dev, last = self._samples.apply(slots, ts, vals, src, off)
        self._rejected.extend(rejected)
        self._collect(parts)
        arena = self._arena
        arena.touch[dev] = (self._seq << 32) | last
        arena.last_seen_ms[dev] = arena.newest_ts[dev] if now_ms is None else now_ms

    def _queue_scalar(self, name: str | None, columns: WindowColumns | tuple | None) -> None:
        """Queue what a scalar path readied: one window as a row of `name`, several as columns."""
        if isinstance(columns, tuple):
            self._counters["windows"] += 1
            rows = self._out[-1] if self._out else None
            if not isinstance(rows, list):  # single windows share a row list until a batch
                rows = []
                self._out.append(rows)
            rows.append((name, *columns))
        elif columns is not None:
            self._counters["windows"] += len(columns.slots)
            self._collect([columns], ordered=True)

    def _collect(self, parts: list[WindowColumns], ordered: bool = False) -> None:
        """Order the call's windows by the arrival of the sample that readied them; queue them."""
        if not parts:
            return
        if len(parts) == 1 and (ordered or increasing(parts[0].positions)):
            p = parts[0]
            names = self._arena.names
            self._out.append(
                WindowBatch(
                    [names[s] for s in p.slots.tolist()],
                    p.data,
                    p.start_ts_ms,
                    p.end_ts_ms,
                    p.sources,
                    p.first_offsets,
                    p.sources.copy(),
                    p.last_offsets,
                    p.ready_offsets,
                    p.anchor_ts_ms,
                )
            )
            return

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        order = np.lexsort((cat("emit_index"), cat("positions")))
        slots = cat("slots")[order]
        sources = cat("sources")[order]
        names = self._arena.names
        self._out.append(
            WindowBatch(
                [names[s] for s in slots.tolist()],
                cat("data")[order],
                cat("start_ts_ms")[order],
                cat("end_ts_ms")[order],
                sources,
                cat("first_offsets")[order],
                sources.copy(),
                cat("last_offsets")[order],
                cat("ready_offsets")[order],
                cat("anchor_ts_ms")[order],
            )
        )
