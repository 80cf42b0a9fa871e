"""Abstaining on a real broker: a min_score above every score gives only abstained events,
while the classification endpoint still answers the top label."""

from __future__ import annotations

import base64
import json
import time
import urllib.request

import numpy as np
import pytest

from stream.jobs.demo import DeviceStreams
from tests.integration.workers import EventReader, Topics, make_config, worker_in_thread

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000
CASES = 24


def test_a_threshold_above_every_score_abstains_on_every_window(
    kafka_bootstrap, new_topic, produce, shipped_predictor, uwave_test
) -> None:
    x = np.asarray(uwave_test.x[:CASES], dtype=np.float32)
    expected = shipped_predictor.predict_batch(x)  # [CASES, K]; batch-invariant
    top = np.float32(expected.max())
    min_score = float(np.nextafter(top, np.float32(2)))  # the next float32 above every score
    assert min_score <= 1.0, "a score of exactly 1.0 cannot be abstained on"
    topics = Topics.fresh(new_topic, partitions=1)
    streams = DeviceStreams(x, devices=4, start_ms=START_MS)
    produce(kafka_bootstrap, topics.input, [(k, v) for step in streams.steps() for k, v, _ in step])
    config = make_config(
        kafka_bootstrap, topics, f"model.min_score={min_score!r}", 'model.abstain_label="unsure"'
    )
    reader = EventReader(kafka_bootstrap, topics.output)
    with worker_in_thread(config, shipped_predictor) as running:
        events = reader.wait_for(CASES, timeout_s=90)
        time.sleep(0.5)
        metrics = running.get("/metrics")[1].decode()
        status = json.loads(running.get("/status.json")[1])
        answer = classify(running.url, x[0])
    reader.close()

    assert len(events) == CASES
    labels = shipped_predictor.manifest.labels
    cases = streams.expected()
    for event in events:
        case = cases[(event["device_id"], event["window_start_ts"])]
        assert event["abstained"] is True
        assert (event["label"], event["class_id"]) == ("unsure", -1)
        assert event["top_label"] == labels[int(expected[case].argmax())]
        np.testing.assert_allclose(event["probabilities"], expected[case], atol=1e-5)
        assert event["score"] == pytest.approx(float(expected[case].max()), abs=1e-5)
    assert f'sensorstream_events_total{{label="unsure"}} {float(CASES)}' in metrics
    assert 'sensorstream_events_total{label="1.0"}' not in metrics
    assert {e["label"] for e in status["events"]} == {"unsure"}
    # the PaddleX-compatible answer is not an event: it keeps the top label
    assert answer["result"]["label"] == labels[int(expected[0].argmax())]
    assert set(answer["result"]) == {"label", "score"}


def classify(url: str, window: np.ndarray) -> dict:
    """POST one window [L, C] as a PaddleX CSV to the worker's classification endpoint."""
    rows = ["group_id,time,dim_0,dim_1,dim_2"]
    rows += [f"0,{t},{a!r},{b!r},{c!r}" for t, (a, b, c) in enumerate(window.tolist())]
    body = json.dumps({"csv": base64.b64encode("\n".join(rows).encode()).decode()}).encode()
    request = urllib.request.Request(
        url + "/time-series-classification",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
