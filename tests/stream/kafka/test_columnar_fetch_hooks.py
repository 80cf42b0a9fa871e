"""The columnar fetch refuses, at start, a kafka-python without the internals it uses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kafka.consumer.fetcher import Fetcher

from stream.errors import SensorstreamError
from stream.kafka.columnar_fetch import ColumnarPartitionRecords, use_columnar_fetch


def test_a_consumer_without_the_fetcher_hook_stops_start_up_with_what_to_install():
    with pytest.raises(SensorstreamError, match=r'PartitionRecords.*"kafka-python==3.0.12"'):
        use_columnar_fetch(SimpleNamespace())


def test_the_installed_kafka_python_has_every_hook_and_gets_the_columnar_reader():
    fetcher = SimpleNamespace(PartitionRecords=Fetcher.PartitionRecords)
    use_columnar_fetch(SimpleNamespace(_fetcher=fetcher))
    assert fetcher.PartitionRecords is ColumnarPartitionRecords
