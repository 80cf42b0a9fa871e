"""Kafka clients built from the config, and a producer that latches failures.

Producer errors fail fast (quixstreams' internal producer does the same): the
first failed send is remembered and re-raised at the next flush, so the worker
never commits offsets past a record whose output was lost.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata, TopicPartition

from stream.config.schema import DeliveryConfig, KafkaConfig
from stream.errors import SensorstreamError
from stream.kafka.client_errors import is_outage

log = logging.getLogger(__name__)


class ProducerFailed(SensorstreamError):
    """A produced record was not acknowledged; nothing after it may be committed."""


def client_settings(kafka: KafkaConfig) -> dict[str, Any]:
    """Settings shared by every client (bootstrap, id, security)."""
    settings: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers.split(","),
        "client_id": kafka.client_id,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    security = getattr(kafka, "security_settings", None)
    if callable(security):
        settings.update(security())
    return settings


def make_consumer(kafka: KafkaConfig, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    """A byte-level consumer with manual commits."""
    settings = client_settings(kafka) | {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": kafka.auto_offset_reset,
        "max_poll_records": kafka.max_poll_records,
        "fetch_min_bytes": kafka.fetch_min_bytes,
        "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
        "max_partition_fetch_bytes": kafka.max_partition_fetch_bytes,
        "session_timeout_ms": kafka.session_timeout_ms,
        "max_poll_interval_ms": kafka.max_poll_interval_ms,
        # new partitions of the inputs reach the group within 30 s, not kafka-python's 5 min
        "metadata_max_age_ms": 30_000,
    }
    settings.update(overrides)
    return KafkaConsumer(**settings)


# kafka-python's default, stated: the dead-letter topic is created to take records this
# large, and dead letters are cut to fit it (stream/core/events.py encode_dead_letter)
MAX_REQUEST_BYTES = 1_048_576


class LatchingProducer:
    """KafkaProducer whose delivery failures surface at `flush`."""

    def __init__(self, kafka: KafkaConfig, **overrides: Any) -> None:
        settings = client_settings(kafka) | {
            "acks": "all",
            "linger_ms": kafka.producer_linger_ms,
            "batch_size": kafka.producer_batch_size,
            "compression_type": kafka.compression_type,
            "max_in_flight_requests_per_connection": 5,
            "max_request_size": MAX_REQUEST_BYTES,
        }
        settings.update(overrides)
        self.max_request_bytes: int = settings["max_request_size"]  # the largest record it sends
        self.producer = KafkaProducer(**settings)
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one record; a failure is latched for the next flush."""
        future = self.producer.send(
            topic, value=value, key=key, headers=headers or None, partition=partition
        )
        future.add_errback(self._failed, topic)

    def begin(self) -> None:
        """exactly-once: open the transaction the next records belong to."""
        self.producer.begin_transaction()

    def commit_with_offsets(
        self,
        offsets: dict[TopicPartition, OffsetAndMetadata],
        group_metadata: object,
        timeout_s: float,
    ) -> None:
        """exactly-once: input offsets and every record since `begin`, atomically."""
        # kafka-python's send_offsets_to_transaction and commit_transaction wait without
        # a bound, so a broker that dies between the flush and the commit would hold the
        # worker past any outage deadline; the same requests are waited on here with one.
        manager = self.producer._transaction_manager
        if offsets:
            self._wait(
                manager.send_offsets_to_transaction(offsets, group_metadata),
                timeout_s,
                "send_offsets_to_transaction",
            )
        self._wait(manager.begin_commit(), timeout_s, "commit_transaction")
        self.raise_if_failed()

    def _wait(self, result: Any, timeout_s: float, what: str) -> None:
        self.producer._sender.wakeup()
        if not result.wait(timeout_ms=timeout_s * 1000):
            raise KafkaTimeoutError(f"{what} not answered within {timeout_s:g} s")

    def abort(self, timeout_s: float) -> None:
        """exactly-once: drop the open transaction (read_committed readers never see it)."""
        try:
            self._wait(
                self.producer._transaction_manager.begin_abort(), timeout_s, "abort_transaction"
            )
        except KafkaError as exc:  # already fenced or closed: nothing left to abort
            log.warning("abort_transaction failed error=%s", exc)

    def flush(self, timeout_s: float) -> None:
        """Wait for every queued record; raise if any was not acknowledged."""
        self.producer.flush(timeout=timeout_s)
        self.raise_if_failed()

    def take_outage_error(self) -> BaseException | None:
        """Clear and return a latched failure that only means "broker unreachable".

        A record that expired in the buffer during an outage was not delivered: the
        caller must replay from its last commit. Other failures stay latched (fatal).
        """
        with self._lock:
            error = self._error
            if error is None or not is_outage(error):
                return None
            self._error = None
            return error

    def raise_if_failed(self) -> None:
        """Re-raise the first delivery failure, if any."""
        with self._lock:
            if self._error is not None:
                raise ProducerFailed(f"producing failed: {self._error}") from self._error

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what can be flushed and close."""
        try:
            self.producer.close(timeout=timeout_s)
        except KafkaError as exc:  # broker gone: what was not delivered was not committed either
            log.warning("producer close failed error=%s", exc)

    def _failed(self, exc: BaseException, topic: str) -> None:
        with self._lock:
            if self._error is None:
                log.error("produce failed topic=%s error=%s", topic, exc)
                self._error = exc


def transactional_producer(kafka: KafkaConfig, delivery: DeliveryConfig) -> LatchingProducer:
    """exactly-once: a producer with this replica's id, its transactions initialised.

    init_transactions fences an earlier producer with the same id (a previous run of
    this replica, or this worker's own producer after a lost transaction) and aborts
    whatever transaction it left open.
    """
    producer = LatchingProducer(
        kafka,
        transactional_id=delivery.transactional_id_for(kafka.group_id),
        transaction_timeout_ms=delivery.transaction_timeout_ms,
    )
    try:
        producer.producer.init_transactions()
    except BaseException:
        producer.close(timeout_s=0)
        raise
    producer.begin()
    return producer
