"""Feeding a WindowStore and the reference the same calls, and comparing what comes out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tests.windows.reference import ReferenceStore
from windows import COUNTER_NAMES, WindowBatch, WindowConfig, WindowStore


@dataclass
class Pair:
    """A WindowStore and a ReferenceStore fed the same calls, compared after each."""

    config: WindowConfig
    store: WindowStore = field(init=False)
    ref: ReferenceStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = WindowStore(self.config)
        self.ref = ReferenceStore(self.config)

    def bulk(self, ids, ts, vals, srcs, offs, now_ms=None) -> None:
        got = self.store.append_bulk(ids, np.asarray(ts, dtype=np.int64), vals,
                                     np.asarray(srcs, dtype=np.int32),
                                     np.asarray(offs, dtype=np.int64), now_ms)
        want = self.ref.append_bulk(ids, ts, vals, srcs, offs, now_ms)
        assert list(zip(got.positions.tolist(), got.reasons, strict=True)) == want

    def chunk(self, device_id, ts, vals, src, off, now_ms=None) -> None:
        self.store.append_chunk(device_id, np.asarray(ts, dtype=np.int64), vals, src, off, now_ms)
        self.ref.append_bulk([device_id] * len(ts), ts, vals, [src] * len(ts), [off] * len(ts),
                             now_ms)

    def one(self, device_id, t, v, src, off, now_ms=None) -> None:
        self.store.append_one(device_id, t, v, src, off, now_ms)
        self.ref.append_bulk([device_id], [t], [v], [src], [off], now_ms)

    def assert_same(self) -> WindowBatch:
        """Same windows (order, contents, positions), counters, watermarks and device count."""
        got = self.store.ready_windows()
        want = self.ref.ready_windows()
        assert got.device_ids == [w.device_id for w in want]
        assert got.data.shape == (len(want), self.config.length, self.config.channels)
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
        assert self.store.counters == {name: self.ref.counters[name] for name in COUNTER_NAMES}
        assert self.store.low_watermarks() == self.ref.low_watermarks()
        assert self.store.active_devices == len(self.ref.devices)
        return got
