"""Input and label drift on a real broker: the PSI gauges of /metrics against the shipped
model's training statistics, for the UWave test stream as it is and with a channel scaled."""

from __future__ import annotations

import time

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream.jobs.demo import DeviceStreams
from tests.integration.workers import (
    EventReader,
    RunningWorker,
    Topics,
    make_config,
    worker_in_thread,
)

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000
INTERVAL_S = 0.5


def drift_gauges(running: RunningWorker) -> tuple[dict[str, float], float | None]:
    """(channel -> input PSI, label PSI) as /metrics shows them."""
    status, body = running.get("/metrics")
    assert status == 200
    channels: dict[str, float] = {}
    label = None
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "sensorstream_input_drift_psi":
                channels[sample.labels["channel"]] = sample.value
            elif sample.name == "sensorstream_label_drift_psi":
                label = sample.value
    return channels, label


@pytest.mark.parametrize("scaled_channel", [None, 1], ids=["as-is", "channel-1-x3"])
def test_input_drift_psi_per_channel_of_the_uwave_test_stream(
    kafka_bootstrap, new_topic, produce, shipped_predictor, uwave_test, scaled_channel
) -> None:
    assert shipped_predictor.manifest.training_stats is not None, "run sensorstream add-stats"
    x = np.array(uwave_test.x, dtype=np.float32)  # [320, 315, 3]
    if scaled_channel is not None:
        x[:, :, scaled_channel] *= 3
    topics = Topics.fresh(new_topic, partitions=2)
    streams = DeviceStreams(x, devices=10, start_ms=START_MS)
    produce(kafka_bootstrap, topics.input, [(k, v) for step in streams.steps() for k, v, _ in step])
    config = make_config(
        kafka_bootstrap,
        topics,
        "drift.window_samples=50000",
        f"drift.interval_s={INTERVAL_S}",
        "batching.max_batch=32",
    )
    reader = EventReader(kafka_bootstrap, topics.output)
    with worker_in_thread(config, shipped_predictor) as running:
        events = reader.wait_for(len(x), timeout_s=120)
        time.sleep(3 * INTERVAL_S)  # an update after the last sample and event
        channels, label = drift_gauges(running)
    reader.close()

    assert len(events) == len(x)
    assert set(channels) == {"0", "1", "2"}
    for channel, value in channels.items():
        if channel == str(scaled_channel):
            assert value > 0.25, channels
        else:
            assert value < 0.1, channels
    assert label is not None
    if scaled_channel is None:
        assert label < 0.1  # 40 cases of each gesture, as in training
