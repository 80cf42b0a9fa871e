"""Noticing a consumer that has silently stopped reading, and making it rejoin.

A stall is either of, lasting `stall_timeout_s`:

1. the worker owns no partition and is not a stable member of its group (stuck
   in a join; a stable member with nothing assigned is a legitimate standby in a
   group with more workers than partitions, and is left alone);
2. an owned, unpaused partition has lag > 0 and no poll returned records.

On a stall the worker's /readyz fails, `sensorstream_consumer_stalls_total`
counts it, one line is logged and the coordinator is asked to rejoin: the
group protocol then revokes and reassigns through the usual listener, so
nothing is kept that committed offsets cannot rebuild.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka.structs import MemberState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerView:
    """What one housekeeping pass sees of the consumer."""

    now_s: float  # monotonic
    owned_partitions: int
    stable_member: bool
    lag: int  # summed over owned, unpaused partitions
    records_total: int  # records polled since the worker started


class ConsumerWatchdog:
    """Tracks progress; `check` names a stall once per `stall_timeout_s` it lasts."""

    def __init__(self, stall_timeout_s: float) -> None:
        self.stall_timeout_s = stall_timeout_s
        self.stalls = 0
        self._healthy_s: float | None = None  # last time the consumer looked fine
        self._records_seen = -1
        self._stalled_reason = ""

    @property
    def stalled(self) -> str:
        """Why the consumer is stalled now ("" when it is not)."""
        return self._stalled_reason

    def excuse(self, now_s: float) -> None:
        """No progress is expected now (the broker is unreachable): restart the clock."""
        self._healthy_s = now_s
        self._stalled_reason = ""

    def check(self, view: ConsumerView) -> str:
        """A reason when a stall starts now (the caller rejoins), else ""."""
        if self._healthy_s is None:
            self._healthy_s = view.now_s
        reason = self._suspect(view)
        if not reason:
            self._healthy_s = view.now_s
            self._stalled_reason = ""
            return ""
        if view.now_s - self._healthy_s < self.stall_timeout_s:
            return ""
        # stalled until it looks fine again; a rejoin that does not help counts again later
        self._stalled_reason = reason
        self._healthy_s = view.now_s
        self.stalls += 1
        return reason

    def _suspect(self, view: ConsumerView) -> str:
        progressed = view.records_total != self._records_seen
        self._records_seen = view.records_total
        if view.owned_partitions == 0 and not view.stable_member:
            return "no partitions assigned and the group join has not completed"
        if view.lag > 0 and not progressed:
            return f"lag={view.lag} and no records polled"
        return ""


def is_stable_member(consumer: object) -> bool:
    """Whether the consumer is a member of a stable group generation (kafka-python 3)."""
    group_metadata = getattr(consumer, "group_metadata", None)
    if group_metadata is None:
        return True
    return group_metadata().state is MemberState.STABLE


def generation_of(consumer: object) -> int:
    """The consumer's current group generation (-1 before it joined)."""
    return int(consumer.group_metadata().generation_id)  # type: ignore[attr-defined]


def request_rejoin(consumer: object) -> None:
    """Ask the coordinator to rejoin at the next poll (revoke, JoinGroup, assign)."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is not None:
        coordinator.request_rejoin()
