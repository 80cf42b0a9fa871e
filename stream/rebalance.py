"""What the worker does when the group moves partitions to or from it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kafka import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from stream.kafka_io import make_consumer
from stream.recovery import read_anchors

if TYPE_CHECKING:
    from stream.worker import Worker

log = logging.getLogger(__name__)


class RebalanceHandler(ConsumerRebalanceListener):
    """Revoke: finish, flush, commit, forget. Assign: seek to the commit, restore anchors."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._changelog = make_consumer(worker.config.kafka, None, enable_auto_commit=False)

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing of a revoked partition may be half-done when its new owner starts."""
        worker = self.worker
        revoked = [tp for tp in revoked if worker.offsets.source_id(tp) in worker.offsets.assigned_sources]
        if not revoked:
            return
        log.info("partitions revoked %s", _names(revoked))
        worker.flush_all(worker.config.delivery.shutdown_deadline_s)
        worker.commit(only=set(revoked))
        sources = [worker.offsets.revoke(tp) for tp in revoked]
        worker.store.drop_sources(sources)
        worker.resume.drop_sources(sources)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Start each partition at its committed offset and resume devices at their anchors."""
        worker = self.worker
        if not assigned:
            return
        log.info("partitions assigned %s", _names(assigned))
        for tp in assigned:
            committed = worker.consumer.committed(tp, metadata=True)
            worker.offsets.assign(tp, committed)
            if committed is not None and committed.offset is not None and committed.offset >= 0:
                worker.consumer.seek(tp, committed.offset)
        anchors = read_anchors(self._changelog, worker.config.kafka.state_topic_name, assigned)
        for tp, devices in anchors.items():
            if devices:
                worker.resume.add(worker.offsets.source_id(tp), devices)
                log.info("resuming devices=%d partition=%s[%d]", len(devices), tp.topic, tp.partition)

    def close(self) -> None:
        """Close the changelog reader."""
        self._changelog.close()


def _names(tps: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps))
