"""A worker on the real broker answers hostile classify requests with 4xx and keeps classifying."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from stream.http.classify import CLASSIFY_PATH
from stream.jobs.demo import DeviceStreams
from tests.integration.workers import EventReader, Topics, make_config, worker_in_thread

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000


def _records(streams: DeviceStreams) -> list[tuple[bytes, bytes]]:
    return [(key, value) for step in streams.steps() for key, value, _ in step]


def _csv(window: np.ndarray, header: str = "group_id,time,a,b,c") -> str:
    rows = [f"0,{t},{s[0]!r},{s[1]!r},{s[2]!r}" for t, s in enumerate(window.tolist())]
    return header + "\n" + "\n".join(rows) + "\n"


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _hostile_bodies(window: np.ndarray) -> list[tuple[str, bytes]]:
    """(name, body) of the requests that stopped or fooled the worker before."""

    def csv_body(text: str) -> bytes:
        return json.dumps({"csv": base64.b64encode(text.encode()).decode()}).encode()

    lines = _csv(window).splitlines()
    huge = lines.copy()
    huge[5] = "0,4," + "1" * 200_000 + ",0,0"
    return [
        ("1e39", csv_body("\n".join([lines[0], "0,0,1e39,0,0", *lines[2:]]))),
        ("-1e39", csv_body("\n".join([lines[0], "0,0,0,-1e39,0", *lines[2:]]))),
        ("duplicate columns", csv_body(_csv(window, "group_id,time,a,a,a"))),
        ("200,000-character field", csv_body("\n".join(huge))),
        ("long header field", csv_body(_csv(window, "group_id,time,a,b," + "c" * 200_000))),
        ("internal URL", json.dumps({"csv": "http://127.0.0.1:9/metrics"}).encode()),
        ("5 MiB body", json.dumps({"csv": "A" * (5 * 1024 * 1024)}).encode()),
    ]


def test_a_1e39_request_to_a_running_worker_gets_a_4xx_and_the_stream_keeps_flowing(
    kafka_bootstrap, new_topic, produce, shipped_predictor, uwave_test
) -> None:
    topics = Topics.fresh(new_topic)
    first = DeviceStreams(uwave_test.x[:8], devices=4, start_ms=START_MS)
    second = DeviceStreams(uwave_test.x[8:16], devices=4, start_ms=START_MS + 86_400_000)
    produce(kafka_bootstrap, topics.input, _records(first))
    config = make_config(kafka_bootstrap, topics)
    reader = EventReader(kafka_bootstrap, topics.output)
    window = uwave_test.x[0]
    with worker_in_thread(config, shipped_predictor) as running:
        assert len(reader.wait_for(8, timeout_s=90)) == 8
        url = running.url + CLASSIFY_PATH
        for name, body in _hostile_bodies(window):
            status, answer = _post(url, body)
            assert 400 <= status < 500, (name, status, answer)
            assert answer["errorCode"] == status and answer["errorMsg"], name
            assert running.thread.is_alive(), f"the worker stopped after the {name} request"
        status, answer = _post(
            url, json.dumps({"csv": base64.b64encode(_csv(window).encode()).decode()}).encode()
        )
        assert status == 200, answer
        produce(kafka_bootstrap, topics.input, _records(second))
        events = reader.wait_for(16, timeout_s=90)
        assert running.thread.is_alive()
        assert running.get("/healthz")[0] == 200
    reader.close()
    keys = {(e["device_id"], e["window_start_ts"]) for e in events}
    assert keys == set(first.expected()) | set(second.expected())
