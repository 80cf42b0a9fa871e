"""Shared fixtures: the UWave data, one real Kafka broker per session, a fresh topic per test."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stream.kafka.local_broker import LocalKafka
from stream.kafka.local_broker_lookup import free_port
from tests import kafka_helpers
from timesnet.uwave import find_uwave

BOOTSTRAP_ENV = "SENSORSTREAM_BOOTSTRAP"


@pytest.fixture(scope="session")
def uwave_dir() -> Path:
    """The folder with the UWave .ts files: $SENSORSTREAM_DATA, else ../shared/data/uwave."""
    return find_uwave()


@pytest.fixture(scope="session")
def local_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A LocalKafka started on a free port for this session, stopped at its end."""
    broker = LocalKafka(port=free_port(), data_dir=tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()  # also after a failed start: the JVM may still be up


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """host:port of the test broker: $SENSORSTREAM_BOOTSTRAP, else the session's LocalKafka."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        return external
    return request.getfixturevalue("local_kafka").bootstrap


@pytest.fixture
def new_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Factory: new_topic(partitions=1) creates a uniquely named topic and waits for its leaders."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:80]

    def make(partitions: int = 1) -> str:
        name = f"{stem}-{uuid.uuid4().hex[:8]}"
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
        return name

    try:
        yield make
    finally:
        admin.close()


@pytest.fixture
def produce() -> Callable[..., None]:
    """kafka_helpers.produce(bootstrap, topic, [(key, value), ...]): send in order and flush."""
    return kafka_helpers.produce


@pytest.fixture
def consume_all() -> Callable[..., list]:
    """kafka_helpers.consume_all(bootstrap, topic, expected_count, timeout_s, isolation_level)."""
    return kafka_helpers.consume_all
