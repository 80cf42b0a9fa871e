"""The Kafka side of a rebalance: calling the owner's hooks from kafka-python's listener.

kafka-python 3 calls rebalance listeners on its network thread, where blocking
client calls (commit, committed offsets) are refused. The worker's own thread is
meanwhile parked inside `poll`, so the listener hands the blocking work to a
short-lived thread and yields to the network loop until it is done: the commit
and offset fetches it issues then run on the loop as usual, before the
partitions move. What the work is belongs to the owner of the partitions
(`PartitionHooks`, implemented in stream/core/partitions.py); this module knows
only when to call it.

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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from kafka import KafkaConsumer
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.net.selector import KernelEvent
from kafka.structs import TopicPartition

from stream.errors import SensorstreamError
from stream.kafka.consumer_watchdog import request_rejoin


class PartitionHooks(Protocol):
    """What the owner of the partitions does when the group moves them."""

    def assigned(self, partitions: list[TopicPartition]) -> None:
        """The group gave these partitions to this member."""
        ...

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """These partitions go to another member; their work may still be committed."""
        ...

    def lost(self, partitions: list[TopicPartition]) -> None:
        """The group dropped this member: nothing of these partitions may be committed."""
        ...


class RebalanceListener(AsyncConsumerRebalanceListener):
    """Runs the hooks off kafka-python's network thread and keeps their failure for `poll`."""

    def __init__(self, consumer: KafkaConsumer, hooks: PartitionHooks) -> None:
        self.consumer = consumer
        self.hooks = hooks
        self._failure: SensorstreamError | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Called by kafka-python before partitions are taken away."""
        if revoked:
            request_rejoin(self.consumer)  # see the module docstring
        await self._keeping_failure(self.hooks.revoked, sorted(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Called by kafka-python once partitions are given."""
        await self._keeping_failure(self.hooks.assigned, sorted(assigned))

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """Called by kafka-python when the group dropped this member (its session expired)."""
        await self._keeping_failure(self.hooks.lost, sorted(lost))

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


def partition_names(tps: list[TopicPartition]) -> str:
    """topic[p],topic[q] for log lines."""
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps))
