"""The worker on a real broker reads topics written with each codec and produces with it."""

from __future__ import annotations

import pytest

from stream.jobs.demo import DeviceStreams
from tests.integration.workers import EventReader, Topics, make_config, worker_in_thread

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000


@pytest.mark.parametrize("codec", ["lz4", "zstd", "snappy"])
def test_a_topic_written_with_a_codec_is_classified_and_events_are_produced_with_it(
    kafka_bootstrap, new_topic, produce, shipped_predictor, uwave_test, codec
) -> None:
    topics = Topics.fresh(new_topic, partitions=1)
    streams = DeviceStreams(uwave_test.x[:4], devices=2, start_ms=START_MS)
    good = [(key, value) for step in streams.steps() for key, value, _ in step]
    bad = [(b"glove-000", b"not json")]
    produce(kafka_bootstrap, topics.input, good + bad, compression_type=codec)

    config = make_config(kafka_bootstrap, topics, f'kafka.compression_type="{codec}"')
    assert config.kafka.compression_type == codec
    events = EventReader(kafka_bootstrap, topics.output)
    dlq = EventReader(kafka_bootstrap, topics.dead_letters)
    with worker_in_thread(config, shipped_predictor) as running:
        got = events.wait_for(4, timeout_s=60)
        dlq.wait_for_records(1, timeout_s=20)
        assert running.thread.is_alive()
    events.close()
    dlq.close()
    assert {(e["device_id"], e["window_start_ts"]) for e in got} == set(streams.expected())
    assert [(r.key, r.value) for r in dlq.records] == bad
