"""What the worker does when the group moves partitions to or from it.

kafka-python 3 calls rebalance listeners on its network thread, where blocking
client calls (commit, committed offsets) are refused. The worker's own thread is
meanwhile parked inside `poll`, so the listener hands the blocking work to a
short-lived thread and yields to the network loop until it is done: the commit
and offset fetches it issues then run on the loop as usual, before the
partitions move.

A revocation also asks the coordinator to rejoin. kafka-python 3.0.12 awaits the
JoinGroup it sends after a revocation only while `need_rejoin()` stays true. A
rebalance started by a metadata snapshot that differs from the one the leader
assigned with leaves `rejoin_needed` false; when the listener outlasts the poll's
timeout, the poll returns with the JoinGroup in flight, that join's own
assignment makes the snapshots equal again, and the next poll's `need_rejoin()`
is false: the join's result is never read, the member stays REBALANCING with
heartbeats off and nothing assigned, and the broker drops it a session timeout
later (LeaveGroup: UnknownMemberIdError at shutdown). The explicit request keeps
`need_rejoin()` true until a join completes.

The revoke itself is bounded: batches already at the predictor are finished and
produced, but windows still waiting for a batch are not classified inside the
callback (that took 13 s on a backlog, holding up the whole group). They stay
out of the commit (offsets.positions holds them) and are read again by whoever
owns the partition next.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.net.selector import KernelEvent
from kafka.structs import TopicPartition

from stream.core.batching import DynamicBatcher
from stream.core.broker_outage import is_outage
from stream.core.recovery import read_anchors
from stream.errors import SensorstreamError
from stream.kafka.clients import make_consumer
from stream.kafka.consumer_watchdog import request_rejoin

if TYPE_CHECKING:
    from stream.core.worker import Worker

log = logging.getLogger(__name__)


class RebalanceHandler(AsyncConsumerRebalanceListener):
    """Revoke: finish, flush, commit, forget. Assign: seek to the commit, restore anchors."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._changelog = make_consumer(
            worker.config.kafka, None, isolation_level=worker.isolation_level
        )
        self._failure: SensorstreamError | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Called by kafka-python before partitions are taken away."""
        if revoked:
            request_rejoin(self.worker.consumer)  # see the module docstring
        await self._keeping_failure(self.revoke, sorted(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Called by kafka-python once partitions are given."""
        await self._keeping_failure(self.assign, sorted(assigned))

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """Called by kafka-python when the group dropped this member (its session expired)."""
        await self._keeping_failure(self.lose, sorted(lost))

    def raise_if_failed(self) -> None:
        """Re-raise, on the worker's thread, what stopped a hook (a predictor error)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def _keeping_failure(
        self, work: Callable[[list[TopicPartition]], None], partitions: list[TopicPartition]
    ) -> None:
        # kafka-python turns a listener's exception into "User rebalance callback throws
        # an error", which would replace the worker's own one-line message; the worker
        # raises it itself once poll returns (nothing was committed past it).
        try:
            await _off_network_thread(work, partitions)
        except SensorstreamError as exc:
            self._failure = self._failure or exc

    def revoke(self, revoked: list[TopicPartition]) -> None:
        """Nothing of a revoked partition may be half-done when its new owner starts."""
        worker = self.worker
        revoked = [
            tp for tp in revoked if worker.offsets.source_id(tp) in worker.offsets.assigned_sources
        ]
        if not revoked:
            return
        if worker.outage.active:
            # nothing can be committed until the broker answers, and in exactly-once the
            # open transaction is lost: hand everything back uncommitted instead
            self.lose(revoked)
            return
        started_s = time.monotonic()
        if not worker.inference.failed:
            worker.finish_in_flight(worker.config.delivery.shutdown_deadline_s)
            worker.commit()  # waiting windows stay uncommitted: their new owner reads them again
        # else: the worker is stopping on a predictor error; nothing past it is committed
        sources = [worker.offsets.revoke(tp) for tp in revoked]
        dropped = _drop_waiting(worker.batcher, sources)
        worker.store.drop_sources(sources)
        worker.resume.drop_sources(sources)
        log.info(
            "partitions revoked %s waiting_windows_dropped=%d took_s=%.2f",
            _names(revoked),
            dropped,
            time.monotonic() - started_s,
        )

    def lose(self, lost: list[TopicPartition]) -> None:
        """The group moved these partitions on without this member: commit and produce nothing.

        Their offsets can no longer be committed under this member's generation, so
        everything read of them since the last commit is dropped (the next owner, maybe
        this worker after its rejoin, reads it again). Exactly-once also aborts the open
        transaction: its events would otherwise be committed beside the next owner's.
        """
        worker = self.worker
        owned = [worker.offsets.partition(s) for s in sorted(worker.offsets.assigned_sources)]
        if not any(tp in owned for tp in lost):
            return
        # in-flight batches and the open transaction mix partitions: everything owned
        # goes back to its last commit, as after a restart
        worker.forget_uncommitted(owned)
        if worker.exactly_once and not worker.inference.failed and not worker.outage.active:
            # (during an outage its retry opens the fresh producer)
            try:
                worker.restart_transaction()
            except KafkaError as exc:
                if not is_outage(exc):
                    raise
                worker.outage_recovery.began(exc)
        log.warning(
            "partitions lost %s (this member was dropped from the group): "
            "rewound to the last commit, rejoining",
            _names(owned),
        )

    def assign(self, assigned: list[TopicPartition]) -> None:
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
                log.info(
                    "resuming devices=%d partition=%s[%d]", len(devices), tp.topic, tp.partition
                )

    def close(self) -> None:
        """Close the changelog reader."""
        self._changelog.close()


async def _off_network_thread(
    work: Callable[[list[TopicPartition]], None], partitions: list[TopicPartition]
) -> None:
    """Run blocking `work` on a helper thread while the network loop keeps running."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            work(partitions)
        except BaseException as exc:  # re-raised below, on the network thread
            failure.append(exc)

    helper = threading.Thread(target=target, name="rebalance", daemon=True)
    helper.start()
    while helper.is_alive():
        await KernelEvent("_sleep", 0.005)  # the selector's own sleep: yields to the loop
    if failure:
        raise failure[0]


def _drop_waiting(batcher: DynamicBatcher, sources: list[int]) -> int:
    """Remove the waiting windows of `sources` from the batcher; returns how many."""
    if not batcher.pending:
        return 0
    before = batcher.pending
    for rows in batcher.drain():
        batcher.add(rows.take(~np.isin(rows.sources, sources)))
    return before - batcher.pending


def _names(tps: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps))
