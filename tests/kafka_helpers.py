"""Produce to and read back from a real broker in tests (conftest exposes these as fixtures)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord


def produce(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]], **config: object
) -> None:
    """Send (key, value) records in order, flush, and raise if any send failed."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **config)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=30)  # re-raises the broker's error for that record, if any
    finally:
        producer.close(timeout=10)


def topic_partitions(consumer: KafkaConsumer, topic: str, timeout_s: float) -> list[TopicPartition]:
    """Every partition of a topic, once the consumer's metadata knows them."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return [TopicPartition(topic, partition) for partition in sorted(partitions)]
        if time.monotonic() > deadline_s:
            raise AssertionError(f"topic {topic!r} has no partitions after {timeout_s:.0f} s")
        time.sleep(0.1)


def consume_all(
    bootstrap: str,
    topic: str,
    expected_count: int,
    timeout_s: float = 30.0,
    isolation_level: str = "read_uncommitted",
) -> list[ConsumerRecord]:
    """Read a topic from the beginning (no group) until expected_count records or timeout_s.

    Returns what arrived, in per-partition order; fewer than expected_count means the
    timeout passed, which the caller's assertion should report.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation_level,
        auto_offset_reset="earliest",
    )
    try:
        partitions = topic_partitions(consumer, topic, timeout_s)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord] = []
        deadline_s = time.monotonic() + timeout_s
        while len(records) < expected_count and time.monotonic() < deadline_s:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
