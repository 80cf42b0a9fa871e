"""Waiting out an unreachable broker: since when, when to retry, and when to give up.

Kafka clients ride out a broker restart or a leader move by retrying; the worker
does the same around its flushes and commits. While the broker is unreachable
nothing is committed and nothing new is read; a retry is due after a backoff
that doubles up to a cap; past `[delivery] broker_outage_s` the worker stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    InvalidProducerEpochError,
    KafkaError,
    ProducerFencedError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from prometheus_client import Gauge

from stream.errors import SensorstreamError

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 5.0
# After a long outage the transaction coordinator has aborted the open transaction
# itself and bumped the producer epoch: the old producer's next request is refused
# as fenced. A fresh producer (whose init_transactions fences the old one) recovers.
TRANSACTION_LOST = (InvalidProducerEpochError, ProducerFencedError)
# A session that expired while the broker was away: the group has moved on, so the
# commit is refused; not committing is safe, and the rejoin replays from the last one.
GROUP_MOVED = (
    CommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)


class BrokerOutageExpired(SensorstreamError):
    """The broker stayed unreachable past `[delivery] broker_outage_s`."""


def is_outage(exc: BaseException) -> bool:
    """Whether a client failure comes from a broker outage (retry later), not a bug or bad data."""
    cause = exc
    while cause is not None and not isinstance(cause, KafkaError):
        cause = cause.__cause__  # ProducerFailed wraps the latched client error
    if cause is None:
        return False
    recoverable = TRANSACTION_LOST + GROUP_MOVED
    return bool(getattr(cause, "retriable", False)) or isinstance(cause, recoverable)


class BrokerOutage:
    """The outage state machine: reachable, or unreachable since a moment, with a retry clock."""

    def __init__(
        self, limit_s: float, gauge: Gauge, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit_s = limit_s
        self._clock = clock
        self._since: float | None = None
        self._backoff_s = FIRST_BACKOFF_S
        self._next_try = 0.0
        gauge.set_function(self.seconds)  # scraped live, not only when the loop runs

    @property
    def active(self) -> bool:
        """The broker is unreachable (a flush or commit failed and no retry succeeded yet)."""
        return self._since is not None

    def seconds(self) -> float:
        """Seconds since the broker became unreachable; 0 while it is reachable."""
        return 0.0 if self._since is None else self._clock() - self._since

    def failed(self, exc: BaseException) -> None:
        """A flush, commit or retry failed because the broker is unreachable."""
        now = self._clock()
        if self._since is None:
            self._since = now
            self._backoff_s = FIRST_BACKOFF_S
            log.warning(
                "broker unreachable: polling paused, retrying for up to %.0f s "
                "(delivery.broker_outage_s) error=%s",
                self.limit_s,
                _describe(exc),
            )
        else:
            self._backoff_s = min(self._backoff_s * 2, MAX_BACKOFF_S)
        self._next_try = now + self._backoff_s

    def recovered(self) -> None:
        """A retry succeeded: the broker answers again."""
        if self._since is not None:
            log.warning("broker reachable again after %.1f s: resuming", self.seconds())
        self._since = None

    def retry_due(self) -> bool:
        """Whether the backoff since the last failure has passed."""
        return self._clock() >= self._next_try

    def wait_s(self) -> float:
        """Time left until the next retry (for a paused poll's timeout)."""
        return max(0.0, self._next_try - self._clock())

    def check_deadline(self) -> None:
        """Raise once the outage has lasted longer than allowed."""
        if self._since is not None and self.seconds() > self.limit_s:
            raise BrokerOutageExpired(
                f"broker unreachable for {self.seconds():.0f} s, longer than "
                f"delivery.broker_outage_s = {self.limit_s:g}: stopped with nothing committed "
                "past the last safe commit (a restart resumes from it)"
            )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
