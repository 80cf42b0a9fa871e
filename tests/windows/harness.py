"""Feeding two WindowStores and the reference the same calls, and comparing what comes out.

``store`` takes each call through the method the test names (append_bulk, append_chunk,
append_one); ``runs_store`` takes the same samples through append_runs, cut into runs
(maximal stretches of one device, source and offset). Both must match the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tests.windows.reference import ReferenceStore
from windows import COUNTER_NAMES, WindowBatch, WindowConfig, WindowStore


def as_runs(ids, srcs, offs) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample device ids, sources and offsets as runs: (ids, lengths, sources, offsets)."""
    run_ids, lengths, run_srcs, run_offs = [], [], [], []
    for d, s, o in zip(ids, srcs, offs, strict=True):
        if run_ids and (run_ids[-1], run_srcs[-1], run_offs[-1]) == (d, s, o):
            lengths[-1] += 1
        else:
            run_ids.append(d)
            lengths.append(1)
            run_srcs.append(s)
            run_offs.append(o)
    return (
        run_ids,
        np.array(lengths, dtype=np.int64),
        np.array(run_srcs, dtype=np.int32),
        np.array(run_offs, dtype=np.int64),
    )


@dataclass
class Pair:
    """Two WindowStores (direct calls, runs) and a ReferenceStore fed the same calls."""

    config: WindowConfig
    store: WindowStore = field(init=False)
    runs_store: WindowStore = field(init=False)
    ref: ReferenceStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = WindowStore(self.config)
        self.runs_store = WindowStore(self.config)
        self.ref = ReferenceStore(self.config)

    def _runs(self, ids, ts, vals, srcs, offs, now_ms):
        run_ids, lengths, run_srcs, run_offs = as_runs(list(ids), list(srcs), list(offs))
        got = self.runs_store.append_runs(
            run_ids,
            lengths,
            np.asarray(ts, dtype=np.int64),
            np.asarray(vals, dtype=np.float32).reshape(len(ts), self.config.channels),
            run_srcs,
            run_offs,
            now_ms,
        )
        return list(zip(got.positions.tolist(), got.reasons, strict=True))

    def bulk(self, ids, ts, vals, srcs, offs, now_ms=None) -> None:
        got = self.store.append_bulk(
            ids,
            np.asarray(ts, dtype=np.int64),
            vals,
            np.asarray(srcs, dtype=np.int32),
            np.asarray(offs, dtype=np.int64),
            now_ms,
        )
        by_runs = self._runs(ids, ts, vals, srcs, offs, now_ms)
        want = self.ref.append_bulk(ids, ts, vals, srcs, offs, now_ms)
        assert list(zip(got.positions.tolist(), got.reasons, strict=True)) == want
        assert by_runs == want

    def chunk(self, device_id, ts, vals, src, off, now_ms=None) -> None:
        n = len(ts)
        self.store.append_chunk(device_id, np.asarray(ts, dtype=np.int64), vals, src, off, now_ms)
        by_runs = self._runs([device_id] * n, ts, vals, [src] * n, [off] * n, now_ms)
        assert by_runs == self.ref.append_bulk(
            [device_id] * n, ts, vals, [src] * n, [off] * n, now_ms
        )

    def one(self, device_id, t, v, src, off, now_ms=None) -> None:
        self.store.append_one(device_id, t, v, src, off, now_ms)
        by_runs = self._runs([device_id], [t], [v], [src], [off], now_ms)
        assert by_runs == self.ref.append_bulk([device_id], [t], [v], [src], [off], now_ms)

    def evict_idle(self, now_ms: int) -> int:
        """evict_idle on all three; returns the count they agree on."""
        want = self.ref.evict_idle(now_ms)
        assert self.store.evict_idle(now_ms) == self.runs_store.evict_idle(now_ms) == want
        return want

    def drop_sources(self, sources) -> int:
        """drop_sources on all three; returns the count they agree on."""
        want = self.ref.drop_sources(sources)
        assert self.store.drop_sources(sources) == self.runs_store.drop_sources(sources) == want
        return want

    def assert_same(self) -> WindowBatch:
        """Same windows (order, contents, positions), counters, watermarks and device count."""
        want = self.ref.ready_windows()
        got = _assert_store_matches(self.store, want, self.ref, self.config)
        _assert_store_matches(self.runs_store, want, self.ref, self.config)
        return got


def _assert_store_matches(
    store: WindowStore, want, ref: ReferenceStore, config: WindowConfig
) -> WindowBatch:
    got = store.ready_windows()
    assert got.device_ids == [w.device_id for w in want]
    assert got.data.shape == (len(want), config.length, config.channels)
    for i, w in enumerate(want):
        assert np.array_equal(got.data[i], w.data), f"window {i} data differs"
    assert got.start_ts_ms.tolist() == [w.start_ts_ms for w in want]
    assert got.end_ts_ms.tolist() == [w.end_ts_ms for w in want]
    assert got.first_sources.tolist() == [w.source for w in want]
    assert got.last_sources.tolist() == [w.source for w in want]
    assert got.first_offsets.tolist() == [w.first_offset for w in want]
    assert got.last_offsets.tolist() == [w.last_offset for w in want]
    assert got.ready_offsets.tolist() == [w.ready_offset for w in want]
    assert got.anchor_ts_ms.tolist() == [w.anchor_ts_ms for w in want]
    assert store.counters == {name: ref.counters[name] for name in COUNTER_NAMES}
    assert store.low_watermarks() == ref.low_watermarks()
    assert store.active_devices == len(ref.devices)
    return got
