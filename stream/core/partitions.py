"""What happens to a worker's windows when the group moves its partitions.

- assigned: start each partition at its committed offset (and the emitted position
  in the commit's metadata), and resume each device at its anchor from the
  changelog, so the windows cut after a move are the ones the old owner would cut;
- revoked: finish and produce the batches already at the predictor, commit, then
  forget the partitions. Windows still waiting for a batch are not classified
  inside the callback (that took 13 s on a backlog, holding up the whole group):
  they stay out of the commit and whoever owns the partition next reads them again;
- lost (the group dropped this member, e.g. its session expired while the broker
  was away): nothing can be committed under the old generation, so everything
  since the last commit is dropped and, in exactly-once, the open transaction is
  fenced; the rejoin hands the partitions out again from their last commit.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import numpy as np
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from stream.core.batching import DynamicBatcher
from stream.core.offsets import OffsetTracker
from stream.core.recovery import ResumeFilter, read_anchors
from stream.kafka.client_errors import is_outage
from stream.kafka.rebalance import partition_names
from windows import WindowStore

log = logging.getLogger(__name__)


class Owner(Protocol):
    """The parts of the worker's loop that a change of ownership touches."""

    offsets: OffsetTracker
    store: WindowStore
    resume: ResumeFilter
    batcher: DynamicBatcher

    @property
    def exactly_once(self) -> bool:
        """Events and offsets go in one transaction."""
        ...

    @property
    def predictor_failed(self) -> bool:
        """A stream batch failed: the worker is stopping and commits nothing more."""
        ...

    @property
    def broker_away(self) -> bool:
        """A broker outage is being waited out."""
        ...

    def finish_in_flight(self, deadline_s: float) -> bool:
        """Produce the batches already at the predictor."""
        ...

    def commit(self) -> None:
        """Flush and commit what is safe."""
        ...

    def forget_uncommitted(self, partitions: list[TopicPartition]) -> None:
        """Drop everything since the last commit of these (all owned) partitions."""
        ...

    def restart_transaction(self) -> None:
        """Fence the open transaction with a fresh producer."""
        ...

    def broker_went_away(self, exc: BaseException) -> None:
        """Start waiting out an outage."""
        ...


class PartitionOwnership:
    """The rebalance hooks of one worker (stream/kafka/rebalance.py calls them)."""

    def __init__(
        self,
        owner: Owner,
        consumer: KafkaConsumer,
        changelog: KafkaConsumer,
        state_topic: str,
        revoke_deadline_s: float,
    ) -> None:
        self.owner = owner
        self.consumer = consumer
        self.changelog = changelog  # a group-less reader of the anchors' changelog
        self.state_topic = state_topic
        self.revoke_deadline_s = revoke_deadline_s

    def assigned(self, partitions: list[TopicPartition]) -> None:
        """Start each partition at its committed offset and resume devices at their anchors."""
        if not partitions:
            return
        owner = self.owner
        log.info("partitions assigned %s", partition_names(partitions))
        for tp in partitions:
            committed = self.consumer.committed(tp, metadata=True)
            owner.offsets.assign(tp, committed)
            if committed is not None and committed.offset is not None and committed.offset >= 0:
                self.consumer.seek(tp, committed.offset)
        anchors = read_anchors(self.changelog, self.state_topic, partitions)
        for tp, devices in anchors.items():
            if devices:
                owner.resume.add(owner.offsets.source_id(tp), devices)
                log.info(
                    "resuming devices=%d partition=%s[%d]", len(devices), tp.topic, tp.partition
                )

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """Nothing of a revoked partition may be half-done when its new owner starts."""
        owner = self.owner
        partitions = self._owned(partitions)
        if not partitions:
            return
        if owner.broker_away:
            # nothing can be committed until the broker answers, and in exactly-once the
            # open transaction is lost: hand everything back uncommitted instead
            self.lost(partitions)
            return
        started_s = time.monotonic()
        if not owner.predictor_failed:
            owner.finish_in_flight(self.revoke_deadline_s)
            owner.commit()  # waiting windows stay uncommitted: their new owner reads them again
        # else: the worker is stopping on a predictor error; nothing past it is committed
        sources = [owner.offsets.revoke(tp) for tp in partitions]
        dropped = _drop_waiting(owner.batcher, sources)
        owner.store.drop_sources(sources)
        owner.resume.drop_sources(sources)
        log.info(
            "partitions revoked %s waiting_windows_dropped=%d took_s=%.2f",
            partition_names(partitions),
            dropped,
            time.monotonic() - started_s,
        )

    def lost(self, partitions: list[TopicPartition]) -> None:
        """The group moved these partitions on without this member: commit and produce nothing.

        In-flight batches and the open transaction mix partitions, so every owned
        partition goes back to its last commit, as after a restart.
        """
        owner = self.owner
        if not self._owned(partitions):
            return
        owned = [owner.offsets.partition(s) for s in sorted(owner.offsets.assigned_sources)]
        owner.forget_uncommitted(owned)
        if owner.exactly_once and not owner.predictor_failed and not owner.broker_away:
            # (during an outage, its retry opens the fresh producer)
            try:
                owner.restart_transaction()
            except KafkaError as exc:
                if not is_outage(exc):
                    raise
                owner.broker_went_away(exc)
        log.warning(
            "partitions lost %s (this member was dropped from the group): "
            "rewound to the last commit, rejoining",
            partition_names(owned),
        )

    def close(self) -> None:
        """Close the changelog reader."""
        self.changelog.close()

    def _owned(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        assigned = self.owner.offsets.assigned_sources
        return [tp for tp in partitions if self.owner.offsets.source_id(tp) in assigned]


def _drop_waiting(batcher: DynamicBatcher, sources: list[int]) -> int:
    """Remove the waiting windows of `sources` from the batcher; returns how many."""
    if not batcher.pending:
        return 0
    before = batcher.pending
    for rows in batcher.drain():
        batcher.add(rows.take(~np.isin(rows.sources, sources)))
    return before - batcher.pending
