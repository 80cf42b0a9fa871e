"""The decoder on a list of records and on the same records as one columnar poll must agree."""

from __future__ import annotations

from itertools import groupby
from types import SimpleNamespace

import numpy as np

from stream.decode.polled import PolledRecords
from stream.decode.router import RecordDecoder
from stream.decode.types import InputRecord
from stream.kafka.record_columns import RecordColumns


def as_poll(records: list[InputRecord]) -> PolledRecords:
    """The records as the worker's poll holds them: columns per run of one partition."""
    pieces = []
    for (topic, partition), run in groupby(records, key=lambda r: (r.topic, r.partition)):
        stand_ins = [
            SimpleNamespace(
                offset=r.offset,
                timestamp=r.timestamp_ms,
                key=r.key,
                value=r.value,
                headers=r.headers,
            )
            for r in run
        ]
        pieces.append((partition, RecordColumns.of_records(topic, partition, stand_ins)))
    return PolledRecords(pieces)


def decode_both(decoder: RecordDecoder, records: list[InputRecord]):
    """decoder.decode(records), checked equal to decoding them as a columnar poll."""
    listed = decoder.decode(list(records))
    polled = decoder.decode(as_poll(list(records)))
    for field in ("timestamps_ms", "values", "record_counts", "record_positions"):
        np.testing.assert_array_equal(getattr(polled[0], field), getattr(listed[0], field))
    assert polled[0].record_devices == listed[0].record_devices
    assert polled[1] == listed[1]
    return listed
