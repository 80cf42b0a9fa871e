"""Where a run's progress goes: the consumer group's commits, or a bounded replay's range.

The worker's loop is the same for a live group member and for a replay; what
differs lives in one of two checkpoint objects:

|                | GroupCheckpoint                         | RangeCheckpoint (replay)             |
|----------------|-----------------------------------------|--------------------------------------|
| reads          | subscribed: partitions come and go      | a manual assignment of [start, end)  |
| offsets go     | to the group (exactly-once: in the      | nowhere: the replay job keeps its    |
|                | transaction with the events)            | progress from the offset tracker     |
| anchors go     | to the changelog, once acknowledged     | into memory, for the job's file      |
| finished       | never (until stopped)                   | every partition read to its end      |
| paused         | by backpressure and outages             | also each partition at its end       |
| broker outage  | waited out (stream/core/broker_outage)  | stops the run (a rerun resumes it)   |

A commit (`Worker.commit_now`), in order, after quix-streams' checkpointing:

1. flush the producer: every event produced so far is acknowledged, or the commit stops;
2. write the anchors of the devices whose events were just acknowledged, flush again
   (an anchor written before its window's event could lose that window on a crash);
3. release the offsets those events held;
4. ask the offset tracker for the positions safe to commit now;
5. hand them to the checkpoint: the group commits them (exactly-once: with the open
   transaction, then opens the next); a replay's range commits nothing;
6. never after a failure: once the predictor failed, nothing is committed again.
"""

from __future__ import annotations

import logging
from typing import Protocol

from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

from stream.config.schema import Config
from stream.core.offsets import OffsetTracker
from stream.core.partitions import Owner, PartitionOwnership
from stream.core.recovery import anchor_record_key
from stream.kafka.client_errors import GROUP_MOVED
from stream.kafka.clients import LatchingProducer, make_consumer
from stream.kafka.columnar_fetch import use_columnar_fetch
from stream.kafka.consumer_watchdog import ConsumerView, ConsumerWatchdog, request_rejoin
from stream.kafka.rebalance import RebalanceListener
from stream.kafka.record_columns import RecordColumns

log = logging.getLogger(__name__)

Anchors = dict[tuple[int, str], int]  # (source, device) -> ts of the sample before its next window


class Checkpoint(Protocol):
    """What differs between a group member and a replay (see the module docstring)."""

    transactional: bool  # events, anchors and offsets go in one transaction per commit
    rides_out_outages: bool  # an unreachable broker is waited out rather than fatal

    def open(self, owner: Owner) -> KafkaConsumer:
        """The consumer, subscribed or assigned, with the columnar fetch."""
        ...

    def clip(self, tp: TopicPartition, columns: list[RecordColumns]) -> list[RecordColumns]:
        """What of a fetch belongs to the run."""
        ...

    def after_poll(self) -> None:
        """Raise what failed inside the poll (a rebalance hook's predictor error)."""
        ...

    def keep_anchors(self, anchors: Anchors) -> None:
        """Anchors of devices whose events were just produced (not yet acknowledged)."""
        ...

    def write_anchors(self, producer: LatchingProducer) -> bool:
        """Send the kept anchors once their events are acknowledged; True if any was sent."""
        ...

    def forget_anchors(self) -> None:
        """Drop kept anchors whose events will be produced again."""
        ...

    def commit(
        self, positions: dict[TopicPartition, OffsetAndMetadata], producer: LatchingProducer
    ) -> bool:
        """Commit `positions` where this run's offsets go; True if they were committed."""
        ...

    def finished(self, idle: bool) -> bool:
        """Whether the run is done (`idle`: nothing waits for the predictor or producer)."""
        ...

    def rewind(self, partitions: list[TopicPartition]) -> None:
        """Seek to the last commit and restore anchors, everything since it being dropped."""
        ...

    def watch(self, view: ConsumerView) -> str:
        """A reason when the consumer stalls now (the worker counts it and rejoins)."""
        ...

    def stalled(self) -> str:
        """Why the consumer is stalled now ("" when it is not)."""
        ...

    def excuse_stall(self, now_s: float) -> None:
        """No progress is expected now (an outage): restart the stall clock."""
        ...

    def close(self) -> None:
        """Release what `open` made (the consumer itself is the worker's)."""
        ...


class GroupCheckpoint:
    """A member of the consumer group: offsets to the group, anchors to the changelog."""

    rides_out_outages = True

    def __init__(self, config: Config) -> None:
        self.config = config
        self.transactional = config.delivery.mode == "exactly-once"
        self.isolation_level = "read_committed" if self.transactional else "read_uncommitted"
        self.watchdog = ConsumerWatchdog(config.kafka.stall_timeout_s)
        self.partitions: PartitionOwnership | None = None  # the rebalance hooks, from `open`
        self._consumer: KafkaConsumer | None = None
        self._listener: RebalanceListener | None = None
        self._anchors: Anchors = {}
        self._offsets: OffsetTracker | None = None

    def open(self, owner: Owner) -> KafkaConsumer:
        """Subscribe to the inputs; partitions arrive through the rebalance hooks."""
        kafka = self.config.kafka
        consumer = make_consumer(kafka, kafka.group_id, isolation_level=self.isolation_level)
        use_columnar_fetch(consumer)
        changelog = make_consumer(kafka, None, isolation_level=self.isolation_level)
        self.partitions = PartitionOwnership(
            owner,
            consumer,
            changelog,
            kafka.state_topic_name,
            self.config.delivery.shutdown_deadline_s,
        )
        self._listener = RebalanceListener(consumer, self.partitions)
        self._consumer = consumer
        self._offsets = owner.offsets
        consumer.subscribe(kafka.input_topics, listener=self._listener)
        # One metadata fetch after subscribing, before the first join: a leader that
        # assigns without the inputs' partitions hands out nothing, and one whose
        # coordinator snapshot predates the subscription (metadata fetched before
        # subscribe) rebalances again as soon as the next metadata response lands.
        consumer.topics()
        return consumer

    def clip(self, tp: TopicPartition, columns: list[RecordColumns]) -> list[RecordColumns]:
        """Everything a group member fetches is its own."""
        return columns

    def after_poll(self) -> None:
        """A predictor error inside a revoke is raised here, on the worker's thread."""
        if self._listener is not None:
            self._listener.raise_if_failed()

    def keep_anchors(self, anchors: Anchors) -> None:
        """Held until their events are acknowledged (`write_anchors`)."""
        self._anchors.update(anchors)

    def write_anchors(self, producer: LatchingProducer) -> bool:
        """To the compacted changelog, on the partition number of the device's input."""
        if not self._anchors or self._offsets is None:
            return False
        anchors, self._anchors = self._anchors, {}
        for (source, device), anchor in anchors.items():
            tp = self._offsets.partition(source)
            producer.send(
                self.config.kafka.state_topic_name,
                str(anchor).encode(),
                anchor_record_key(tp.topic, device),
                partition=tp.partition,
            )
        return True

    def forget_anchors(self) -> None:
        """Their events were dropped: the anchors must not be written either."""
        self._anchors.clear()

    def commit(
        self, positions: dict[TopicPartition, OffsetAndMetadata], producer: LatchingProducer
    ) -> bool:
        """To the group: with the transaction in exactly-once, else a plain offset commit."""
        consumer = self._consumer
        if consumer is None:
            return False
        if self.transactional:
            producer.commit_with_offsets(
                positions,
                consumer.group_metadata(),
                self.config.delivery.producer_flush_timeout_s,
            )
            producer.begin()
            return bool(positions)
        if not positions:
            return False
        try:
            consumer.commit(positions)
        except GROUP_MOVED as exc:
            # kicked out while the broker was away: the rejoin hands the partitions
            # out again from their last commit, so skipping this one loses nothing
            log.warning("commit refused: this worker is no longer in its group error=%s", exc)
            request_rejoin(consumer)
            return False
        return True

    def finished(self, idle: bool) -> bool:
        """A group member runs until it is stopped."""
        return False

    def rewind(self, partitions: list[TopicPartition]) -> None:
        """As if the group had just assigned them (after an outage's rewind)."""
        assert self.partitions is not None, "rewound before open"
        self.partitions.assigned(partitions)

    def watch(self, view: ConsumerView) -> str:
        """The stall watchdog (stream/kafka/consumer_watchdog.py)."""
        return self.watchdog.check(view)

    def stalled(self) -> str:
        """Why the consumer is stalled now ("" when it is not)."""
        return self.watchdog.stalled

    def excuse_stall(self, now_s: float) -> None:
        """An outage is not a stall: the clock starts when the broker is back."""
        self.watchdog.excuse(now_s)

    def close(self) -> None:
        """Close the changelog reader."""
        if self.partitions is not None:
            self.partitions.close()


class RangeCheckpoint:
    """A replay: [start, end) of each partition, no group, no commits, no changelog writes."""

    transactional = False
    rides_out_outages = False

    def __init__(self, config: Config, bounds: dict[TopicPartition, tuple[int, int]]) -> None:
        self.config = config
        self.bounds = bounds
        self.anchors: Anchors = {}  # (source, device) -> anchor, for the job's resume file
        self._consumer: KafkaConsumer | None = None
        self._offsets: OffsetTracker | None = None

    def open(self, owner: Owner) -> KafkaConsumer:
        """Assign the ranges and seek to their starts."""
        consumer = make_consumer(self.config.kafka, None)
        use_columnar_fetch(consumer)
        consumer.assign(list(self.bounds))
        for tp, (start, _) in self.bounds.items():
            owner.offsets.assign(tp, None)
            consumer.seek(tp, start)
        self._consumer = consumer
        self._offsets = owner.offsets
        return consumer

    def clip(self, tp: TopicPartition, columns: list[RecordColumns]) -> list[RecordColumns]:
        """Records before the range's end; a partition that reached it is paused."""
        end = self.bounds[tp][1]
        if columns and columns[-1].offsets[-1] >= end - 1:
            assert self._consumer is not None and self._offsets is not None
            self._consumer.pause(tp)  # nothing past the range is read
            self._offsets.consumed(self._offsets.source_id(tp), end)
        return [piece.pick(piece.offsets < end) for piece in columns]

    def after_poll(self) -> None:
        """No rebalance hooks run in a replay."""

    def keep_anchors(self, anchors: Anchors) -> None:
        """The live group's changelog is not a replay's business; its resume file keeps them."""
        self.anchors.update(anchors)

    def write_anchors(self, producer: LatchingProducer) -> bool:
        """Nothing goes to the changelog."""
        return False

    def forget_anchors(self) -> None:
        """A replay keeps anchors only of windows it produced; nothing is produced again."""

    def commit(
        self, positions: dict[TopicPartition, OffsetAndMetadata], producer: LatchingProducer
    ) -> bool:
        """A replay never touches any group's offsets."""
        return False

    def finished(self, idle: bool) -> bool:
        """Every range read to its end (position, not the last record: markers take offsets)."""
        if not idle or self._consumer is None:
            return False
        consumer = self._consumer
        return all(consumer.position(tp) >= end for tp, (_, end) in self.bounds.items())

    def rewind(self, partitions: list[TopicPartition]) -> None:
        """A replay does not ride out outages (rides_out_outages is False): never called."""
        raise RuntimeError("a replay has no commit to rewind to; rerun it with --resume")

    def watch(self, view: ConsumerView) -> str:
        """A replay's assignment is manual: no group to stall in."""
        return ""

    def stalled(self) -> str:
        """Never stalled in a group."""
        return ""

    def excuse_stall(self, now_s: float) -> None:
        """Nothing to excuse."""

    def close(self) -> None:
        """Nothing of its own to close."""
