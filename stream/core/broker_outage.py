"""Waiting out an unreachable broker: since when, when to retry, and when to give up.

Kafka clients ride out a broker restart or a leader move by retrying; the worker
does the same around its flushes and commits. While the broker is unreachable
nothing is committed and nothing new is read; a retry is due after a backoff
that doubles up to a cap; past `[delivery] broker_outage_s` the worker stops.
Once the broker answers, at-least-once commits and goes on (or replays from the
last commit if buffered records expired unsent); exactly-once opens a fresh
producer, whose init_transactions aborts the old transaction, and rewinds to
the last committed transaction's offsets and anchors, as a restart would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from prometheus_client import Gauge

from stream.config.schema import Config
from stream.errors import SensorstreamError
from stream.kafka.client_errors import GROUP_MOVED, caused_by, is_outage
from stream.kafka.clients import LatchingProducer
from stream.kafka.consumer_watchdog import request_rejoin

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 5.0


class BrokerOutageExpired(SensorstreamError):
    """The broker stayed unreachable past `[delivery] broker_outage_s`."""


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


class Recovering(Protocol):
    """The parts of the worker an outage's recovery works with."""

    config: Config
    consumer: KafkaConsumer | None
    producer: LatchingProducer | None

    @property
    def exactly_once(self) -> bool:
        """Events and offsets go in one transaction."""
        ...

    def note_poll(self) -> None:
        """The poll loop is alive."""
        ...

    def restart_transaction(self) -> None:
        """Fence the open transaction with a fresh producer."""
        ...

    def forget_uncommitted(self, partitions: list[TopicPartition]) -> None:
        """Drop everything since the last commit of these (all owned) partitions."""
        ...

    def rewind(self, partitions: list[TopicPartition]) -> None:
        """Seek to the last commit and restore the devices' anchors."""
        ...

    def commit_now(self) -> None:
        """Flush and commit what is safe (raises while the broker is away)."""
        ...


class OutageRecovery:
    """The worker's side of an outage: hold its partitions, retry, rewind to the last commit."""

    def __init__(self, worker: Recovering, outage: BrokerOutage) -> None:
        self.worker = worker
        self.outage = outage
        self._paused: list[TopicPartition] = []  # paused by the outage, resumed after it
        self._rewind_pending = False  # replay owned partitions from their last commit

    def began(self, exc: BaseException) -> None:
        """A flush or commit could not reach the broker."""
        self.outage.failed(exc)
        if caused_by(exc, GROUP_MOVED):
            # the group dropped this member while the broker was away: rejoin at the next
            # poll instead of waiting for a heartbeat to find out; commits fail until then
            request_rejoin(self._consumer)
        # exactly-once: the open transaction may be unusable now; its records are
        # aborted and rebuilt from the last commit once the broker answers again
        self._rewind_pending = self.worker.exactly_once
        self._hold_partitions()

    def ride_out(self) -> None:
        """Keep the group session with every partition paused; retry after the backoff."""
        consumer = self._consumer
        self.outage.check_deadline()
        self._hold_partitions()
        timeout_ms = int(min(max(self.outage.wait_s(), 0.01), 0.1) * 1000)
        fetched = consumer.poll(timeout_ms=timeout_ms)
        self.worker.note_poll()
        for tp, columns in fetched.items():  # fetched just before a pause: read again later
            firsts = [int(piece.offsets[0]) for piece in columns if len(piece)]
            if firsts:
                consumer.seek(tp, min(firsts))
        if not self.outage.retry_due():
            return
        try:
            self._retry()
        except Exception as exc:  # the producer's latch wraps client errors: see is_outage
            if not is_outage(exc):
                raise
            self.outage.failed(exc)
            return
        self.outage.recovered()
        assigned = consumer.assignment()
        consumer.resume(*[tp for tp in self._paused if tp in assigned])
        self._paused = []

    @property
    def _consumer(self) -> KafkaConsumer:
        assert self.worker.consumer is not None, "an outage begins only once the worker is open"
        return self.worker.consumer

    def _hold_partitions(self) -> None:
        consumer = self._consumer
        held = [tp for tp in consumer.assignment() if tp not in consumer.paused()]
        if held:
            consumer.pause(*held)
            self._paused.extend(held)

    def _retry(self) -> None:
        """Raises while the broker is still unreachable."""
        worker = self.worker
        if worker.exactly_once:
            # a probe with a bounded wait, so init_transactions is not left waiting for
            # max_block_ms on a broker that is still down
            assigned = sorted(self._consumer.assignment())
            if assigned:
                self._consumer.committed(
                    assigned[0], timeout_ms=worker.config.kafka.request_timeout_ms
                )
            worker.restart_transaction()  # the old transaction is aborted by the fencing
        else:
            assert worker.producer is not None, "at-least-once keeps its producer"
            worker.producer.flush(worker.config.delivery.producer_flush_timeout_s)
            if worker.producer.take_outage_error() is not None:
                self._rewind_pending = True  # records expired unsent: replay them
        if self._rewind_pending:
            self._rewind()
        if not worker.exactly_once:
            worker.commit_now()

    def _rewind(self) -> None:
        """Drop in-memory windows and re-read owned partitions from their last commit.

        What the last commit covers was delivered; everything after it is rebuilt, as
        after a restart (anchors included), so exactly-once loses and repeats nothing.
        """
        worker = self.worker
        assigned = sorted(self._consumer.assignment())
        worker.forget_uncommitted(assigned)
        worker.rewind(assigned)  # seeks to the committed offsets, reads the anchors
        self._rewind_pending = False
        log.info("rewound to the last commit partitions=%d", len(assigned))
