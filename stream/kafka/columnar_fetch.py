"""kafka-python's consumer, handing out a fetch as RecordColumns instead of one object per record.

kafka-python keeps the network, the group protocol, positions and commits; only
the step that turns a fetched partition into records is replaced, through the
Fetcher's `PartitionRecords` hook (kafka-python 3.0). `poll()` then returns
`{TopicPartition: [RecordColumns, ...]}`: one entry per record batch, together
holding up to `max_records` records.

The batch-level rules are kafka-python's, restated: CRC check, aborted
transactions skipped under read_committed, control batches never returned, and
the next fetch offset taken past a batch's last offset (compaction may have
removed its last records).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.structs import TopicPartition

from stream.errors import SensorstreamError
from stream.kafka.record_batches import NUMPY_FROM_RECORDS, SmallBatches, read_batch
from stream.kafka.record_columns import RecordColumns

log = logging.getLogger(__name__)

_READ_COMMITTED = 1  # kafka-python's IsolationLevel.READ_COMMITTED
SMALL_RUN_RECORDS = 256  # small batches read together, up to this many records


class TakenColumns(list):  # type: ignore[type-arg]
    """The columns one `take` hands out; its length is their record count.

    kafka-python's Fetcher counts `len(take(n))` against `max_records`, so the
    length must be records, not columns, or one poll would drain many times more.
    """

    def __init__(self) -> None:
        super().__init__()
        self.records = 0

    def __len__(self) -> int:
        return self.records

    def add(self, columns: RecordColumns) -> None:
        """Append one piece of columns."""
        self.append(columns)
        self.records += len(columns)


class ColumnarPartitionRecords(Fetcher.PartitionRecords):  # type: ignore[misc]
    """One fetched partition, read a record batch at a time into RecordColumns."""

    _held: RecordColumns | None = None  # the rest of a batch a `take` had to split

    def _maybe_skip_record(self, record: Any) -> bool:
        return False  # columns are trimmed to fetch_offset as they are read

    def drain(self) -> None:
        """Forget what is left (kafka-python's drain, plus a held remainder)."""
        self._held = None
        super().drain()

    def take(self, n: int | None = None) -> TakenColumns:
        """Columns holding up to n records; the position moves past exactly those."""
        self._maybe_raise_next_inline_exception()
        taken = TakenColumns()
        iterator = self.record_iterator
        try:
            while iterator is not None and (n is None or taken.records < n):
                columns = self._held if self._held is not None else next(iterator, None)
                self._held = None
                if columns is None:
                    break
                room = len(columns) if n is None else n - taken.records
                if len(columns) > room:
                    self._held = columns.pick(slice(room, None))
                    columns = columns.pick(slice(0, room))
                taken.add(columns)
                self.next_fetch_offset = int(columns.offsets[-1]) + 1
        except Exception as error:
            if not taken:
                raise
            self._next_inline_exception = error  # raised by the next take, as kafka-python does
        return taken

    def _unpack_records(
        self, tp: TopicPartition, records: Any, key_deserializer: Any, value_deserializer: Any
    ) -> Iterator[RecordColumns]:
        if key_deserializer is not None or value_deserializer is not None:
            raise TypeError("columnar fetch reads raw bytes: configure no deserializers")
        small = SmallBatches(tp.topic, tp.partition)  # runs of small batches, read together
        batch = records.next_batch()
        last_batch = None
        while batch is not None:
            last_batch = batch
            if self.check_crcs and not batch.validate_crc():
                raise CorruptRecordError(
                    f"record batch for partition {tp} at offset {batch.base_offset} "
                    "failed its crc check"
                )
            if batch.magic < 2:
                yield from self._handed_out(small.flush())
                yield from self._handed_out(
                    RecordColumns.of_records(tp.topic, tp.partition, list(batch))
                )
            elif self._skipped(batch):
                yield from self._handed_out(small.flush())
                self.next_fetch_offset = batch.next_offset
            elif batch.records_count < NUMPY_FROM_RECORDS:
                small.add(batch)
                if len(small) >= SMALL_RUN_RECORDS:  # a poll reads only what it hands out
                    yield from self._handed_out(small.flush())
            else:
                yield from self._handed_out(small.flush())
                yield from self._handed_out(read_batch(batch, tp.topic, tp.partition))
            batch = records.next_batch()
        yield from self._handed_out(small.flush())
        if last_batch is not None and last_batch.magic == 2:
            self.next_fetch_offset = last_batch.next_offset
        self.drain()

    def _handed_out(self, columns: RecordColumns | None) -> Iterator[RecordColumns]:
        """The columns at or after the fetch offset, counted in the fetch metrics."""
        if columns is None:
            return
        if len(columns) and columns.offsets[0] < self.fetch_offset:
            # a fetch from the middle of a batch returns the whole batch
            columns = columns.pick(columns.offsets >= self.fetch_offset)
        if len(columns):
            self.records_read += len(columns)
            self.bytes_read += columns.size_bytes
            yield columns

    def _skipped(self, batch: Any) -> bool:
        """Whether a v2 batch is a control batch or an aborted transaction's (never returned)."""
        self.leader_epoch = batch.leader_epoch
        if self.isolation_level == _READ_COMMITTED and batch.has_producer_id():
            self._consume_aborted_transactions_up_to(batch.last_offset)
            if self._contains_abort_marker(batch):
                self.aborted_producer_ids.discard(batch.producer_id)
            elif self._is_batch_aborted(batch):
                log.debug(
                    "skipping aborted batch partition=%s producer_id=%s offsets=%s..%s",
                    self.topic_partition,
                    batch.producer_id,
                    batch.base_offset,
                    batch.last_offset,
                )
                return True
        return bool(batch.is_control_batch)


# What this module relies on in kafka-python 3.0 (checked at start, not found mid-stream).
_FETCHER_HOOKS = ("PartitionRecords",)
_PARTITION_RECORDS_HOOKS = (
    "_maybe_raise_next_inline_exception",
    "_consume_aborted_transactions_up_to",
    "_contains_abort_marker",
    "_is_batch_aborted",
)
_BATCH_HOOKS = ("_maybe_uncompress", "records_count", "base_offset", "next_offset")


def use_columnar_fetch(consumer: KafkaConsumer) -> None:
    """Make `consumer.poll()` return RecordColumns (see the module doc)."""
    from kafka.record.default_records import DefaultRecordBatch

    fetcher = getattr(consumer, "_fetcher", None)
    missing = [name for name in _FETCHER_HOOKS if not hasattr(fetcher, name)]
    missing += [n for n in _PARTITION_RECORDS_HOOKS if not hasattr(Fetcher.PartitionRecords, n)]
    missing += [name for name in _BATCH_HOOKS if not hasattr(DefaultRecordBatch, name)]
    if fetcher is None or missing:
        from kafka import __version__

        raise SensorstreamError(
            f"kafka-python {__version__} lacks {', '.join(missing)}, which the worker's "
            'columnar fetch uses; install the tested version: pip install "kafka-python==3.0.12"'
        )
    fetcher.PartitionRecords = ColumnarPartitionRecords
