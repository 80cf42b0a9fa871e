"""Where each device's next window starts, kept across crashes and rebalances.

Count-based windows have a phase: device A's next window starts at its k-th
sample, and replaying A's partition from the committed offset (the low watermark,
set by whichever device is furthest behind) would otherwise cut A's windows at
the wrong samples. So every time windows of a device are produced, the worker
also produces the device's *anchor* to a compacted changelog topic, keyed by
topic and device, written to the same partition number as the device's input:
the timestamp of the last sample before its next window. A new owner of the
partition reads that partition of the changelog, and while replaying drops each
device's samples up to its anchor (they belong to windows already emitted), so
the device resumes on exactly the sample the old owner would have used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from stream.core.columns import WindowRows
from stream.decode.types import SampleBatch

log = logging.getLogger(__name__)

KEY_SEPARATOR = "\x1f"


def anchor_record_key(topic: str, device_id: str) -> bytes:
    """Changelog key of a device: its input topic and id."""
    return f"{topic}{KEY_SEPARATOR}{device_id}".encode()


def latest_anchor_per_device(rows: WindowRows) -> dict[tuple[int, str], int]:
    """(source, device) -> the anchor of that device's last window among `rows`."""
    latest: dict[tuple[int, str], int] = {}
    for source, device, anchor in zip(
        rows.sources.tolist(), rows.device_ids, rows.anchor_ts_ms.tolist(), strict=True
    ):
        latest[(source, device)] = anchor
    return latest


def read_anchors(
    consumer: KafkaConsumer,
    changelog_topic: str,
    partitions: Sequence[TopicPartition],
    timeout_s: float = 30.0,
) -> dict[TopicPartition, dict[str, int]]:
    """The last anchor of every device of the given input partitions.

    `consumer` is a group-less consumer used only for this; it is reassigned here.
    """
    wanted: dict[int, set[str]] = {}
    for tp in partitions:
        wanted.setdefault(tp.partition, set()).add(tp.topic)
    available = consumer.partitions_for_topic(changelog_topic) or set()
    log_parts = [TopicPartition(changelog_topic, p) for p in wanted if p in available]
    found: dict[TopicPartition, dict[str, int]] = {tp: {} for tp in partitions}
    if not log_parts:
        return found
    consumer.assign(log_parts)
    consumer.seek_to_beginning(*log_parts)
    end = consumer.end_offsets(log_parts)
    deadline = time.monotonic() + timeout_s
    remaining = {tp for tp in log_parts if end[tp] > 0}
    while remaining and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=200).items():
            for record in records:
                topic, _, device = record.key.decode().partition(KEY_SEPARATOR)
                if topic in wanted[tp.partition] and record.value is not None:
                    found[TopicPartition(topic, tp.partition)][device] = int(record.value)
            if consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
    if remaining:
        log.warning("window-state changelog not read to the end partitions=%s", sorted(remaining))
    consumer.assign([])
    return found


class ResumeFilter:
    """Drops replayed samples that belong to windows emitted before a restart."""

    def __init__(self, skip_after_anchor: int) -> None:
        self.skip_after_anchor = skip_after_anchor
        self._anchors: dict[str, list[int]] = {}  # device -> [source, anchor_ts, skips_left]

    @property
    def resuming(self) -> int:
        """Devices still waiting to reach their anchor."""
        return len(self._anchors)

    def add(self, source: int, anchors: dict[str, int]) -> None:
        """Devices of `source` resume after these timestamps."""
        for device, anchor in anchors.items():
            self._anchors[device] = [source, anchor, self.skip_after_anchor]

    def drop_sources(self, sources: Iterable[int]) -> None:
        """Forget devices of revoked partitions."""
        gone = set(sources)
        self._anchors = {d: v for d, v in self._anchors.items() if v[0] not in gone}

    def keep_mask(
        self, device_ids: Sequence[str], timestamps_ms: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_] | None:
        """Mask of samples to keep, or None when no device is resuming (the fast path)."""
        if not self._anchors:
            return None
        keep = np.ones(len(device_ids), dtype=bool)
        anchors = self._anchors
        for i in [i for i, d in enumerate(device_ids) if d in anchors]:
            state = anchors.get(device_ids[i])
            if state is None:
                continue
            if timestamps_ms[i] <= state[1]:
                keep[i] = False
            elif state[2] > 0:
                keep[i] = False
                state[2] -= 1
            else:
                del anchors[device_ids[i]]
        return keep

    def without_emitted(self, samples: SampleBatch) -> SampleBatch:
        """The samples without those replayed for windows emitted before a restart."""
        if not self.resuming:
            return samples
        keep = self.keep_mask(samples.device_ids, samples.timestamps_ms)
        if keep is None or keep.all():
            return samples
        picked = np.flatnonzero(keep)
        device_ids = samples.device_ids
        return SampleBatch.from_samples(
            [device_ids[i] for i in picked.tolist()],
            samples.timestamps_ms[picked],
            samples.values[picked],
            samples.record_index[picked],
        )
