"""Replay ranges: --from/--to as times, and per partition the offsets they cover.

Offsets are looked up by Kafka record timestamp with a group-less consumer; each
partition's range is [first record with ts >= from, first record with ts >= to).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from stream.errors import SensorstreamError

TIME_FORMS = (
    "epoch milliseconds (e.g. 1732280000123) or ISO-8601 with an offset (e.g. 2024-11-22T12:00:00Z)"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last one datetime can print


class ReplayError(SensorstreamError):
    """A replay argument or stored job that cannot be used; the message says what to pass."""


# -- times -----------------------------------------------------------------------
def parse_time(text: str, flag: str, keyword: str) -> int | None:
    """Epoch ms of a --from/--to value, or None for its keyword (earliest / now)."""
    value = text.strip()
    if value.lower() == keyword:
        return None
    if re.fullmatch(r"\d+", value):
        return _in_range(int(value), text, flag)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ReplayError(f"{flag} {text!r}: expected {keyword}, {TIME_FORMS}")
    return _in_range((moment - _EPOCH) // timedelta(milliseconds=1), text, flag)


def _in_range(timestamp_ms: int, text: str, flag: str) -> int:
    """timestamp_ms if Kafka and datetime can hold it (1970 to 9999), else one line saying so."""
    if not 0 <= timestamp_ms <= MAX_TIME_MS:
        raise ReplayError(
            f"{flag} {text!r}: expected a time from 1970-01-01T00:00:00Z to "
            f"9999-12-31T23:59:59.999Z (epoch ms 0 to {MAX_TIME_MS})"
        )
    return timestamp_ms


def format_ms(timestamp_ms: int) -> str:
    """An epoch-ms timestamp as ISO-8601 UTC with milliseconds."""
    moment = _EPOCH + timedelta(milliseconds=timestamp_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_order(from_ms: int | None, to_ms: int | None) -> None:
    """--to must lie after --from when both are times."""
    if from_ms is not None and to_ms is not None and to_ms <= from_ms:
        raise ReplayError(
            f"--to {format_ms(to_ms)} is not after --from {format_ms(from_ms)}; "
            "pass a --to later than --from (or now)"
        )


# -- ranges ----------------------------------------------------------------------
@dataclass(frozen=True)
class PartitionFacts:
    """What the broker says about one partition before a replay starts."""

    beginning: int  # oldest retained offset
    end: int  # next offset to be written (the high watermark at lookup time)
    oldest_ts_ms: int | None  # Kafka timestamp of the oldest retained record; None if empty
    from_offset: int | None  # first offset with timestamp >= from; None if none
    to_offset: int | None  # first offset with timestamp >= to; None if none


@dataclass(frozen=True)
class ResolvedRange:
    """Per-partition [start, end) offsets of a replay, and notes for the user."""

    bounds: dict[TopicPartition, tuple[int, int]]
    notes: tuple[str, ...] = ()


def resolve_range(
    facts: Mapping[TopicPartition, PartitionFacts], from_ms: int | None, to_ms: int | None
) -> ResolvedRange:
    """Offset ranges for [from, to) by record timestamp (None = earliest / end at start)."""
    check_order(from_ms, to_ms)
    filled = {tp: f for tp, f in facts.items() if f.end > f.beginning}
    if not filled:
        raise ReplayError("the topics hold no retained records; nothing to replay")
    if from_ms is not None and all(f.from_offset is None for f in filled.values()):
        raise ReplayError(
            f"--from {format_ms(from_ms)} is after the newest retained record; "
            "pass an earlier time or earliest"
        )
    bounds: dict[TopicPartition, tuple[int, int]] = {}
    for tp in sorted(filled, key=lambda t: (t.topic, t.partition)):
        f = filled[tp]
        start = f.beginning if from_ms is None else _clamp(f.from_offset, f)
        stop = f.end if to_ms is None else _clamp(f.to_offset, f)
        if stop > start:
            bounds[tp] = (start, stop)
    if not bounds:
        raise ReplayError(
            f"no records between --from {format_ms(from_ms or 0)} and --to "
            f"{format_ms(to_ms or 0)}; widen the range"
        )
    return ResolvedRange(bounds, _retention_notes(filled, from_ms))


def _clamp(offset: int | None, facts: PartitionFacts) -> int:
    """An offset looked up by time, inside [beginning, end] (None: past the end)."""
    if offset is None:
        return facts.end
    return min(max(offset, facts.beginning), facts.end)


def _retention_notes(
    filled: Mapping[TopicPartition, PartitionFacts], from_ms: int | None
) -> tuple[str, ...]:
    if from_ms is None:
        return ()
    early = [
        f.oldest_ts_ms
        for f in filled.values()
        if f.oldest_ts_ms is not None and f.oldest_ts_ms > from_ms
    ]
    if not early:
        return ()
    return (
        f"note: --from {format_ms(from_ms)} is before the oldest retained record of "
        f"{len(early)} of {len(filled)} partitions (oldest {format_ms(min(early))}); "
        "they start at their oldest retained record",
    )


def lookup_facts(
    consumer: KafkaConsumer, topics: list[str], from_ms: int | None, to_ms: int | None
) -> dict[TopicPartition, PartitionFacts]:
    """Per partition of `topics`: retained offsets and the offsets of from/to (no group)."""
    tps: list[TopicPartition] = []
    for topic in topics:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            known = sorted(t for t in consumer.topics() if not t.startswith("__"))
            shown = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
            raise ReplayError(
                f"--topics: unknown topic {topic!r}; existing topics: {shown or 'none'}"
            )
        tps += [TopicPartition(topic, p) for p in sorted(partitions)]
    beginning = consumer.beginning_offsets(tps)
    end = consumer.end_offsets(tps)
    oldest = consumer.offsets_for_times({tp: 0 for tp in tps})
    at_from = consumer.offsets_for_times({tp: from_ms for tp in tps}) if from_ms is not None else {}
    at_to = consumer.offsets_for_times({tp: to_ms for tp in tps}) if to_ms is not None else {}
    return {
        tp: PartitionFacts(
            beginning=beginning[tp],
            end=end[tp],
            oldest_ts_ms=oldest[tp].timestamp if oldest.get(tp) else None,
            from_offset=at_from[tp].offset if at_from.get(tp) else None,
            to_offset=at_to[tp].offset if at_to.get(tp) else None,
        )
        for tp in tps
    }
