"""The topics the worker writes to exist before it writes (and the changelog is compacted)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, NewPartitions, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream.config.schema import KafkaConfig
from stream.errors import SensorstreamError
from stream.kafka.clients import MAX_REQUEST_BYTES, client_settings

log = logging.getLogger(__name__)


def ensure_topics(
    kafka: KafkaConfig, default_partitions: int = 1, extra: Sequence[str] = ()
) -> dict[str, int]:
    """Create missing output topics (and `extra` ones); grow the changelog to the inputs'.

    Returns the partition count of every input topic that exists.
    """
    try:
        # a short first contact: an unreachable broker is a start-up error, said quickly
        settings = client_settings(kafka) | {"bootstrap_timeout_ms": 8000}
        admin = KafkaAdminClient(**settings)
    except KafkaError as exc:
        raise SensorstreamError(
            f"cannot reach Kafka at {kafka.bootstrap_servers} ({exc}); start a broker "
            "(sensorstream kafka start) or fix kafka.bootstrap_servers"
        ) from exc
    try:
        inputs = _partition_counts(admin, kafka.input_topics)
        changelog_partitions = max([default_partitions, *inputs.values()])
        wanted = {
            kafka.output_topic: NewTopic(kafka.output_topic, default_partitions, 1),
            kafka.dead_letter_topic: NewTopic(
                kafka.dead_letter_topic,
                default_partitions,
                1,
                # takes every dead letter the producer sends whatever the broker's default
                topic_configs={"max.message.bytes": str(MAX_REQUEST_BYTES)},
            ),
            kafka.alerts_topic: NewTopic(kafka.alerts_topic, default_partitions, 1),
            **{name: NewTopic(name, default_partitions, 1) for name in extra},
            kafka.state_topic_name: NewTopic(
                kafka.state_topic_name,
                changelog_partitions,
                1,
                topic_configs={"cleanup.policy": "compact"},
            ),
        }
        existing = set(admin.list_topics())
        missing = [topic for name, topic in wanted.items() if name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", ",".join(t.name for t in missing))
        _check_dead_letter_limit(admin, kafka.dead_letter_topic)
        have = wait_for_partitions(admin, kafka.state_topic_name)
        if have < changelog_partitions:
            admin.create_partitions(
                {kafka.state_topic_name: NewPartitions(total_count=changelog_partitions)}
            )
            log.info("changelog partitions grown to %d", changelog_partitions)
        return inputs
    finally:
        admin.close()


def _check_dead_letter_limit(admin: KafkaAdminClient, topic: str) -> None:
    """An existing dead-letter topic must take records as large as the worker sends there."""
    try:
        described = admin.describe_configs(
            [ConfigResource("TOPIC", topic, {"max.message.bytes": None})], config_filter="all"
        )
        limit = int(described["topic"][topic]["max.message.bytes"]["value"])
    except (KafkaError, KeyError, TypeError, ValueError) as exc:  # no DescribeConfigs right
        log.warning("cannot read max.message.bytes topic=%s error=%s", topic, exc)
        return
    if limit < MAX_REQUEST_BYTES:
        raise SensorstreamError(
            f"dead-letter topic {topic} takes records up to {limit} bytes (max.message.bytes) "
            f"but dead letters are up to {MAX_REQUEST_BYTES}; raise its max.message.bytes "
            f"to at least {MAX_REQUEST_BYTES} or choose another kafka.dead_letter_topic"
        )


def _partition_counts(admin: KafkaAdminClient, topics: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for meta in admin.describe_topics(topics):
        if not meta.get("error_code") and meta.get("partitions"):
            counts[meta["name"]] = len(meta["partitions"])
    return counts


def wait_for_partitions(admin: KafkaAdminClient, topic: str, timeout_s: float = 10.0) -> int:
    """The partition count of a topic just created, once the broker describes it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = _partition_counts(admin, [topic])
        if counts.get(topic):
            return counts[topic]
        time.sleep(0.1)
    raise SensorstreamError(f"topic {topic} was created but never became visible")
