"""The columnar fetch against kafka-python's stock consumer on the same topics, real broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from stream.decode.polled import PolledRecords
from stream.kafka.columnar_fetch import use_columnar_fetch

pytestmark = pytest.mark.integration


def stock_records(bootstrap, topic, expected, isolation_level="read_uncommitted", start=0):
    """(offset, timestamp, key, value, headers) of every record, read by kafka-python itself."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    return [
        (r.offset, r.timestamp, r.key, r.value, list(r.headers))
        for r in _read(consumer, topic, expected, lambda batch: batch, start=start)
    ]


def columnar_records(bootstrap, topic, expected, max_records=500, start=0, **config):
    """The same fields through the columnar fetch, polling `max_records` at a time."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **config)
    use_columnar_fetch(consumer)
    polls: list[int] = []

    def records(columns):
        polled = PolledRecords([(0, piece) for piece in columns])
        polls.append(len(polled))
        return list(polled)

    got = _read(consumer, topic, expected, records, max_records, start)
    assert max(polls) <= max_records
    return [(r.offset, r.timestamp_ms, r.key, r.value, r.headers) for r in got]


def _read(consumer, topic, expected, convert, max_records=500, start=0, timeout_s=30.0):
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        out: list = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200, max_records=max_records).values():
                out.extend(convert(batch))
        # nothing more arrives: positions moved past exactly what was returned
        assert not consumer.poll(timeout_ms=300)
        assert consumer.position(tp) == consumer.end_offsets([tp])[tp]
        return out
    finally:
        consumer.close()


def test_every_field_matches_the_stock_consumer_across_batches_and_split_polls(
    kafka_bootstrap, new_topic
):
    topic = new_topic()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5, batch_size=4096)
    sent = 0
    for k in range(400):
        key = None if k % 7 == 1 else f"dev-{k % 5}".encode()
        value = None if k % 11 == 0 and key else bytes([k % 256]) * (k % 300)
        headers = [("trace", str(k).encode())] if k % 13 == 0 else []
        producer.send(topic, value=value, key=key, headers=headers)
        sent += 1
        if k % 50 == 0:
            producer.flush()  # many batches, of many sizes
    producer.flush()
    producer.close()
    expected = stock_records(kafka_bootstrap, topic, sent)
    assert len(expected) == sent
    for max_records in (7, 64, 500):
        assert columnar_records(kafka_bootstrap, topic, sent, max_records) == expected


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd", "snappy"])
def test_compressed_batches_read_the_same(kafka_bootstrap, new_topic, codec):
    topic = new_topic()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, compression_type=codec)
    for k in range(300):
        producer.send(topic, value=f"sample {k}".encode() * 20, key=b"dev")
    producer.flush()
    producer.close()
    assert columnar_records(kafka_bootstrap, topic, 300, 50) == stock_records(
        kafka_bootstrap, topic, 300
    )
    # a restart from a committed offset inside a compressed batch: the broker returns
    # the whole batch, and the records before the offset must not come back
    ours = columnar_records(kafka_bootstrap, topic, 300 - 137, 50, start=137)
    assert [r[0] for r in ours] == list(range(137, 300))
    assert ours == stock_records(kafka_bootstrap, topic, 300 - 137, start=137)


def test_read_committed_skips_aborted_transactions_and_markers(kafka_bootstrap, new_topic):
    topic = new_topic()

    def transaction(values, commit, suffix):
        producer = KafkaProducer(
            bootstrap_servers=kafka_bootstrap, transactional_id=f"{topic}-{suffix}"
        )
        producer.init_transactions()
        producer.begin_transaction()
        for value in values:
            producer.send(topic, value=value, key=b"k")
        producer.flush()
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
        producer.close()

    transaction([b"a1", b"a2"], True, "one")
    transaction([b"x1", b"x2", b"x3"], False, "two")
    transaction([b"b1"], True, "three")
    stock = stock_records(kafka_bootstrap, topic, 3, "read_committed")
    ours = columnar_records(kafka_bootstrap, topic, 3, 2, isolation_level="read_committed")
    assert [r[3] for r in ours] == [b"a1", b"a2", b"b1"]
    assert ours == stock
