"""A shadow model on the real broker: one shadow event per window, as offline, agreement counted."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stream.jobs.demo import DeviceStreams
from tests.integration.workers import (
    EventReader,
    Topics,
    make_config,
    produce_device_streams,
    worker_in_thread,
)
from timesnet.predictor import load_predictor

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TCN = REPO / "models" / "uwave-tcn"
START_MS = 1_700_000_000_000


def test_the_shadow_topic_holds_one_event_per_window_as_offline_and_agreement_adds_up(
    kafka_bootstrap, new_topic, uwave_test, shipped_predictor
) -> None:
    topics = Topics.fresh(new_topic, partitions=2)
    streams = DeviceStreams(uwave_test.x[:64], devices=8, start_ms=START_MS)
    expected = streams.expected()  # (device, window start) -> test case
    produce_device_streams(kafka_bootstrap, topics.input, streams)
    config = make_config(
        kafka_bootstrap, topics, f'shadow.path="{TCN}"', "shadow.max_queued_batches=64"
    )
    shadow_topic = f"{topics.output}.shadow"
    primary = EventReader(kafka_bootstrap, topics.output)
    shadow = EventReader(kafka_bootstrap, shadow_topic)
    with worker_in_thread(config, shipped_predictor) as running:
        deadline = time.monotonic() + 120
        while len(shadow.events()) < len(expected) or len(primary.events()) < len(expected):
            assert time.monotonic() < deadline, "shadow or primary events missing"
            shadow.read(0.2)
            primary.read(0.2)
        time.sleep(0.5)  # the counters of the last shadow batch
        body = running.get("/metrics")[1].decode()
        status = json.loads(urllib.request.urlopen(running.url + "/status.json").read())
    shadow.read(0.5)
    primary.read(0.5)
    by_window = {(e["device_id"], e["window_start_ts"]): e for e in shadow.events()}
    counts = Counter((e["device_id"], e["window_start_ts"]) for e in shadow.events())
    assert set(counts) == set(expected) and max(counts.values()) == 1
    assert all(e["shadow"] is True for e in by_window.values())

    offline = load_predictor(TCN)
    keys = sorted(expected)
    probabilities = offline.predict_batch(uwave_test.x[[expected[k] for k in keys]])
    published = np.array([by_window[k]["probabilities"] for k in keys], dtype=np.float32)
    np.testing.assert_allclose(published, probabilities, atol=1e-5)
    assert {e["model"]["version"] for e in by_window.values()} == {offline.manifest.version}
    offline.close()

    primary_labels = {(e["device_id"], e["window_start_ts"]): e["label"] for e in primary.events()}
    pairs = Counter((primary_labels[k], by_window[k]["label"]) for k in keys)
    agreed = sum(n for (p, s), n in pairs.items() if p == s)
    assert _value(body, 'sensorstream_shadow_agreement_total{agree="true"}') == agreed
    assert _value(body, 'sensorstream_shadow_agreement_total{agree="false"}') == len(keys) - agreed
    assert _value(body, "sensorstream_shadow_windows_total") == len(keys)
    assert _value(body, "sensorstream_shadow_skipped_total") == 0
    for (p, s), n in pairs.items():
        assert _value(body, f'sensorstream_shadow_pairs_total{{primary="{p}",shadow="{s}"}}') == n
    assert status["shadow"]["agreement_rate"] == pytest.approx(agreed / len(keys), abs=1e-4)
    primary.close()
    shadow.close()


def _value(body: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", body, re.M)
    assert found, f"{series} not on /metrics"
    return float(found.group(1))
