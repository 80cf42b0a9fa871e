"""The outage state machine: gauge, one warning per state change, backoff, deadline."""

from __future__ import annotations

import logging
import threading

import pytest
from kafka.errors import (
    CommitFailedError,
    InvalidProducerEpochError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
)
from prometheus_client import CollectorRegistry, Gauge

from stream.config.loading import load_config
from stream.core.broker_outage import MAX_BACKOFF_S, BrokerOutage, BrokerOutageExpired
from stream.errors import ConfigError, SensorstreamError
from stream.kafka.client_errors import is_outage
from stream.kafka.clients import LatchingProducer, ProducerFailed


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _outage(limit_s: float = 10.0) -> tuple[BrokerOutage, _Clock, CollectorRegistry]:
    registry = CollectorRegistry()
    clock = _Clock()
    gauge = Gauge("sensorstream_broker_unreachable_seconds", "x", registry=registry)
    return BrokerOutage(limit_s, gauge, clock=clock), clock, registry


def _gauge(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("sensorstream_broker_unreachable_seconds")


def test_gauge_counts_seconds_since_unreachable_and_is_zero_once_reachable() -> None:
    outage, clock, registry = _outage()
    assert _gauge(registry) == 0.0
    outage.failed(KafkaTimeoutError())
    clock.now += 7.5
    assert outage.active and _gauge(registry) == 7.5
    outage.recovered()
    assert not outage.active and _gauge(registry) == 0.0


def test_one_warning_per_state_change_however_many_retries_fail(caplog) -> None:
    outage, clock, _ = _outage()
    with caplog.at_level(logging.WARNING, logger="stream.core.broker_outage"):
        for _ in range(5):
            outage.failed(KafkaConnectionError("refused"))
            clock.now += 1
        outage.recovered()
        outage.recovered()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("broker unreachable") and "reachable again" in messages[1]


def test_retries_back_off_up_to_the_cap() -> None:
    outage, clock, _ = _outage(limit_s=1000)
    waits = []
    for _ in range(10):
        outage.failed(KafkaTimeoutError())
        waits.append(outage.wait_s())
        assert not outage.retry_due()
        clock.now += waits[-1]
        assert outage.retry_due()
    assert waits == sorted(waits) and waits[0] < 1 and waits[-1] == MAX_BACKOFF_S


def test_deadline_raises_a_sensorstream_error_naming_the_setting() -> None:
    outage, clock, _ = _outage(limit_s=10)
    outage.failed(KafkaTimeoutError())
    clock.now += 10
    outage.check_deadline()
    clock.now += 0.5
    with pytest.raises(BrokerOutageExpired, match="delivery.broker_outage_s") as caught:
        outage.check_deadline()
    assert isinstance(caught.value, SensorstreamError)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (KafkaTimeoutError(), True),
        (KafkaConnectionError("refused"), True),
        (InvalidProducerEpochError(), True),
        (CommitFailedError("kicked out while the broker was away"), True),
        (MessageSizeTooLargeError(), False),
        (ValueError("bug"), False),
    ],
)
def test_only_unreachable_broker_errors_count_as_an_outage(exc, expected) -> None:
    assert is_outage(exc) is expected
    wrapped = ProducerFailed("producing failed")
    wrapped.__cause__ = exc
    assert is_outage(wrapped) is expected


def test_latched_producer_error_is_cleared_only_when_it_means_unreachable() -> None:
    producer = LatchingProducer.__new__(LatchingProducer)  # no client: only the latch
    producer._lock = threading.Lock()
    producer._error = None
    producer._failed(KafkaTimeoutError("expired in the buffer"), "events")
    assert isinstance(producer.take_outage_error(), KafkaTimeoutError)
    producer.raise_if_failed()  # cleared: the worker rewinds and goes on
    producer._failed(MessageSizeTooLargeError(), "events")
    assert producer.take_outage_error() is None
    with pytest.raises(ProducerFailed):
        producer.raise_if_failed()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", '"soon"'])
def test_broker_outage_s_out_of_range_is_one_config_error(value) -> None:
    with pytest.raises(ConfigError, match="broker_outage_s"):
        load_config(None, [f"delivery.broker_outage_s={value}"], environ={})


def test_broker_outage_s_defaults_to_five_minutes() -> None:
    assert load_config(None, [], environ={}).delivery.broker_outage_s == 300.0
