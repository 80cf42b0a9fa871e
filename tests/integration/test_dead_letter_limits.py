"""Dead letters on the real broker: oversized records cut to fit, input headers kept."""

from __future__ import annotations

import time

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, NewTopic
from kafka.structs import TopicPartition

from stream.errors import SensorstreamError
from stream.jobs.demo import DeviceStreams
from stream.kafka.clients import MAX_REQUEST_BYTES
from stream.kafka.topics import ensure_topics
from tests.integration.workers import EventReader, Topics, make_config, worker_in_thread

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000


def _json_of_size(device: str, size: int) -> bytes:
    """A well-formed sample record padded with JSON whitespace to exactly `size` bytes."""
    body = orjson.dumps({"device_id": device, "ts": START_MS, "values": [0.1, 0.2, 0.3]})
    return body[:-1] + b" " * (size - len(body)) + b"}"


def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    try:
        return consumer.committed(TopicPartition(topic, 0))
    finally:
        consumer.close()


def test_oversized_gzip_records_are_dead_lettered_cut_and_the_stream_goes_on(
    kafka_bootstrap, new_topic, shipped_predictor, uwave_test
) -> None:
    topics = Topics.fresh(new_topic, partitions=1)
    streams = DeviceStreams(uwave_test.x[:6], devices=2, start_ms=START_MS)
    good = [(key, value) for step in streams.steps() for key, value, _ in step]
    poison = [_json_of_size("glove-000", 1_048_602), _json_of_size("glove-001", 10_000_000)]
    # gzip makes both small enough for the broker; uncompressed they pass no 1 MiB limit
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, compression_type="gzip", max_request_size=20_000_000
    )
    third = len(good) // 3
    records = [*good[:third], (b"glove-000", poison[0]), *good[third : 2 * third]]
    records += [(b"glove-001", poison[1]), *good[2 * third :]]
    for key, value in records:
        producer.send(topics.input, key=key, value=value).get(timeout=30)
    producer.close()

    config = make_config(kafka_bootstrap, topics)
    events = EventReader(kafka_bootstrap, topics.output)
    dlq = EventReader(kafka_bootstrap, topics.dead_letters)
    with worker_in_thread(config, shipped_predictor) as running:
        got = events.wait_for(6, timeout_s=90)
        dlq.wait_for_records(2, timeout_s=30)
        time.sleep(1.0)  # a commit interval passes after the last record
        assert running.thread.is_alive()
        assert running.get("/healthz")[0] == 200
    assert {(e["device_id"], e["window_start_ts"]) for e in got} == set(streams.expected())
    assert _committed(kafka_bootstrap, topics.group, topics.input) == len(records)

    assert len(dlq.records) == 2
    for record, original in zip(dlq.records, poison, strict=True):
        headers = dict(record.headers)
        assert headers["dlq.reason"] == b"too_large"
        assert headers["dlq.truncated"] == b"true"
        assert int(headers["dlq.original_bytes"]) == len(original)
        assert len(record.value) < MAX_REQUEST_BYTES
        assert original.startswith(record.value) and len(record.value) > MAX_REQUEST_BYTES // 2

    # a restart finds the offsets past both poison records: nothing re-sent, nothing crashes
    with worker_in_thread(config, shipped_predictor) as running:
        time.sleep(4.0)
        assert running.thread.is_alive()
        assert not dlq.read(1.0) and not events.read(0.5)
    events.close()
    dlq.close()


def test_dead_letters_keep_the_input_records_headers_before_their_own(
    kafka_bootstrap, new_topic, shipped_predictor
) -> None:
    topics = Topics.fresh(new_topic, partitions=1)
    sent = [("trace-id", b"4bf92f3577b34da6"), ("schema-id", b"7"), ("empty", b"")]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(topics.input, key=b"glove-000", value=b"not json", headers=sent)
    producer.send(topics.input, key=b"glove-000", value=b"[1]")  # no headers of its own
    producer.close()

    config = make_config(kafka_bootstrap, topics)
    dlq = EventReader(kafka_bootstrap, topics.dead_letters)
    with worker_in_thread(config, shipped_predictor):
        dlq.wait_for_records(2, timeout_s=60)
    dlq.close()
    first, second = dlq.records
    assert first.headers[: len(sent)] == sent
    assert dict(first.headers)["dlq.reason"] == b"invalid_json"
    assert [name for name, _ in second.headers if not name.startswith("dlq.")] == []
    assert "dlq.truncated" not in dict(first.headers)


def test_the_dead_letter_topic_takes_a_whole_dead_letter_or_start_up_says_what_to_raise(
    kafka_bootstrap, new_topic
) -> None:
    topics = Topics.fresh(new_topic, partitions=1)
    config = make_config(kafka_bootstrap, topics)
    ensure_topics(config.kafka)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert _max_message_bytes(admin, topics.dead_letters) == MAX_REQUEST_BYTES
        small = Topics.fresh(new_topic, partitions=1)
        admin.create_topics(
            [NewTopic(small.dead_letters, 1, 1, topic_configs={"max.message.bytes": "1000"})]
        )
    finally:
        admin.close()
    with pytest.raises(SensorstreamError, match="raise its max.message.bytes to at least 1048576"):
        ensure_topics(make_config(kafka_bootstrap, small).kafka)


def _max_message_bytes(admin: KafkaAdminClient, topic: str) -> int:
    resource = ConfigResource("TOPIC", topic, {"max.message.bytes": None})
    described = admin.describe_configs([resource], config_filter="all")
    return int(described["topic"][topic]["max.message.bytes"]["value"])
