"""Every offset the worker commits is built here.

A sample at offset o may belong to a window that is not complete yet, so
committing o as soon as it is read would lose that window on a crash. Per
partition the worker commits the smallest of:

1. the next offset to consume (everything read so far is accounted for);
2. the window store's low watermark (the oldest sample an unfinished window needs);
3. the first offset of any window still in flight (batched, predicting, or
   produced but not yet acknowledged).

The commit metadata carries `emitted_through`: every window whose completing
record has an offset <= it, and every dead letter at or below it, has been
acknowledged by the broker. After a restart the worker replays from the
committed offset and skips those instead of sending them twice.

Rules kept here, after quixstreams' checkpointing: the caller flushes the
producer before asking for offsets; offsets never go backwards; nothing is
committed after a failure (the worker simply stops calling).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson
from kafka.structs import OffsetAndMetadata, TopicPartition

from stream.core.columns import WindowRows

NOTHING_EMITTED = -1


@dataclass(frozen=True)
class CommitMetadata:
    """What a commit remembers besides the offset itself."""

    emitted_through: int

    def encode(self) -> str:
        """Compact JSON for the commit's metadata string (brokers cap it at 4 KB by default)."""
        return orjson.dumps({"v": 1, "emitted_through": self.emitted_through}).decode()

    @staticmethod
    def decode(text: str | None) -> CommitMetadata:
        """Parse metadata written by `encode`; anything else means nothing known."""
        if not text:
            return CommitMetadata(NOTHING_EMITTED)
        try:
            data = orjson.loads(text)
            return CommitMetadata(int(data["emitted_through"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return CommitMetadata(NOTHING_EMITTED)


@dataclass
class _InFlight:
    min_first: dict[int, int]
    min_ready: dict[int, int]


class OffsetTracker:
    """Source ids for topic-partitions, in-flight windows and commit positions."""

    def __init__(self) -> None:
        self._ids: dict[TopicPartition, int] = {}
        self._partitions: list[TopicPartition] = []
        self._assigned: set[int] = set()
        self._next_offset: dict[int, int] = {}
        self._committed: dict[int, int] = {}
        self._skip_through: dict[int, int] = {}
        self._in_flight: dict[int, _InFlight] = {}
        self._tokens = itertools.count()

    # -- identities ---------------------------------------------------------
    def source_id(self, tp: TopicPartition) -> int:
        """A small stable int for a topic-partition (what windows/ calls a source)."""
        sid = self._ids.get(tp)
        if sid is None:
            sid = self._ids[tp] = len(self._partitions)
            self._partitions.append(tp)
        return sid

    def partition(self, source: int) -> TopicPartition:
        """The topic-partition behind a source id."""
        return self._partitions[source]

    @property
    def assigned_sources(self) -> set[int]:
        """Source ids currently owned by this worker."""
        return set(self._assigned)

    # -- assignment ---------------------------------------------------------
    def assign(self, tp: TopicPartition, committed: OffsetAndMetadata | None) -> int:
        """Start owning a partition; returns its source id."""
        sid = self.source_id(tp)
        self._assigned.add(sid)
        if committed is not None and committed.offset is not None and committed.offset >= 0:
            self._committed[sid] = committed.offset
            self._skip_through[sid] = CommitMetadata.decode(committed.metadata).emitted_through
        else:
            self._committed.pop(sid, None)
            self._skip_through[sid] = NOTHING_EMITTED
        self._next_offset.pop(sid, None)
        return sid

    def revoke(self, tp: TopicPartition) -> int:
        """Stop owning a partition; returns its source id."""
        sid = self.source_id(tp)
        self._assigned.discard(sid)
        for key in (self._next_offset, self._committed, self._skip_through):
            key.pop(sid, None)
        for flight in self._in_flight.values():
            flight.min_first.pop(sid, None)
            flight.min_ready.pop(sid, None)
        return sid

    # -- progress -----------------------------------------------------------
    def consumed(self, source: int, next_offset: int) -> None:
        """Everything below `next_offset` of this source has been read and handled."""
        if next_offset > self._next_offset.get(source, -1):
            self._next_offset[source] = next_offset

    def next_offset(self, source: int) -> int:
        """One past the highest offset handled of a source (-1 before any)."""
        return self._next_offset.get(source, -1)

    def skip_through(self, source: int) -> int:
        """Offsets at or below this were emitted before a restart (replay zone)."""
        return self._skip_through.get(source, NOTHING_EMITTED)

    def already_emitted(
        self, sources: npt.NDArray[np.int32], offsets: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        """Mask of rows whose completing offset is inside the replay zone."""
        if not any(v >= 0 for v in self._skip_through.values()):
            return np.zeros(len(offsets), dtype=bool)
        limits = np.array(
            [self._skip_through.get(s, NOTHING_EMITTED) for s in range(len(self._partitions))],
            dtype=np.int64,
        )
        return offsets <= limits[sources]

    def hold(self, rows: WindowRows) -> int:
        """Keep windows' offsets uncommittable until `release`; returns a token."""
        flight = _InFlight({}, {})
        for source in np.unique(rows.sources).tolist():
            mine = rows.sources == source
            flight.min_first[source] = int(rows.first_offsets[mine].min())
            flight.min_ready[source] = int(rows.ready_offsets[mine].min())
        token = next(self._tokens)
        self._in_flight[token] = flight
        return token

    def release(self, token: int) -> None:
        """The windows behind `token` have been acknowledged (or deliberately dropped)."""
        self._in_flight.pop(token, None)

    # -- commits ------------------------------------------------------------
    def positions(
        self, needed: dict[int, int], waiting: Iterable[WindowRows] = ()
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Offsets safe to commit now, for assigned partitions read since assignment.

        `needed` is the window store's low watermark per source; `waiting` are
        windows not yet handed to the predictor. Call only after the producer has
        flushed everything produced so far.
        """
        tokens = [self.hold(rows) for rows in waiting]
        try:
            return self._positions(needed)
        finally:
            for token in tokens:
                self.release(token)

    def _positions(self, needed: dict[int, int]) -> dict[TopicPartition, OffsetAndMetadata]:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for source in sorted(self._assigned):
            next_offset = self._next_offset.get(source)
            if next_offset is None:
                continue
            first_in_flight = min(
                (f.min_first[source] for f in self._in_flight.values() if source in f.min_first),
                default=math.inf,
            )
            ready_in_flight = min(
                (f.min_ready[source] for f in self._in_flight.values() if source in f.min_ready),
                default=math.inf,
            )
            offset = int(min(next_offset, needed.get(source, math.inf), first_in_flight))
            emitted = int(min(next_offset - 1, ready_in_flight - 1))
            emitted = max(emitted, self._skip_through.get(source, NOTHING_EMITTED))
            previous = self._committed.get(source)
            if previous is not None and offset < previous:
                offset = previous
            offsets[self._partitions[source]] = OffsetAndMetadata(
                offset, CommitMetadata(emitted).encode(), -1
            )
        return offsets

    def committed(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Record a successful commit (the floor for later ones)."""
        for tp, meta in offsets.items():
            self._committed[self.source_id(tp)] = meta.offset
