"""Which Kafka client failures mean "the broker is away (or the group moved on)", not a bug.

Kafka clients ride out a broker restart or a leader move by retrying; the worker
does the same around its flushes and commits for exactly these errors, and stops
on anything else (stream/core/broker_outage.py decides what to do about them).
"""

from __future__ import annotations

from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    InvalidProducerEpochError,
    KafkaError,
    ProducerFencedError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

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


def is_outage(exc: BaseException) -> bool:
    """Whether a client failure comes from a broker outage (retry later), not a bug or bad data."""
    cause = _kafka_cause(exc)
    if cause is None:
        return False
    recoverable = TRANSACTION_LOST + GROUP_MOVED
    return bool(getattr(cause, "retriable", False)) or isinstance(cause, recoverable)


def _kafka_cause(exc: BaseException) -> BaseException | None:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, KafkaError):
        cause = cause.__cause__  # ProducerFailed wraps the latched client error
    return cause


def caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether the Kafka error behind `exc` (unwrapped from ProducerFailed) is one of `kinds`."""
    return isinstance(_kafka_cause(exc), kinds)
