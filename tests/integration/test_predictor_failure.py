"""A predictor error on stream windows: counted, one line, exit 2, nothing committed past it."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from stream.jobs.demo import DeviceStreams
from tests.integration.failing_predictor_worker import POISON_ABOVE, FailOnPoison
from tests.integration.workers import (
    REPO,
    EventReader,
    Topics,
    make_config,
    produce_device_streams,
    worker_in_thread,
    worker_overrides,
)

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000


def _start_failing_worker(overrides: list[str], log_path: Path) -> subprocess.Popen:
    """The real CLI through the harness whose model refuses poisoned windows."""
    args = [sys.executable, "-m", "tests.integration.failing_predictor_worker", "run"]
    for item in overrides:
        args += ["--set", item]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORSTREAM__")}
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def _end_offset(bootstrap: str, tp: TopicPartition) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(tp)
    finally:
        consumer.close()


def _wait_for(predicate, timeout_s: float, what: str, log, worker: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log()[-3000:]}"
        assert worker.poll() is None, f"worker exited before {what}:\n{log()[-3000:]}"
        time.sleep(0.2)


def test_predictor_error_on_stream_windows_stops_the_worker_with_one_line_and_no_commit_past_it(
    kafka_bootstrap, new_topic, uwave_test, tmp_path
) -> None:
    topics = Topics.fresh(new_topic)
    tp = TopicPartition(topics.input, 0)
    good = DeviceStreams(uwave_test.x[:8], devices=4, start_ms=START_MS)
    produce_device_streams(kafka_bootstrap, topics.input, good)
    log_path = tmp_path / "worker.log"
    worker = _start_failing_worker(worker_overrides(kafka_bootstrap, topics), log_path)

    def log() -> str:
        return log_path.read_text(errors="replace")

    reader = EventReader(kafka_bootstrap, topics.output)
    try:
        _wait_for(
            lambda: len(reader.wait_for_records(8, 1)) >= 8, 120, "8 good events", log, worker
        )
        poison_from = _end_offset(kafka_bootstrap, tp)
        _wait_for(
            lambda: _committed(kafka_bootstrap, topics.group, tp) == poison_from,
            30,
            "the commit of the good windows",
            log,
            worker,
        )
        # glove-000's third window: every sample far above what the model accepts
        poison = DeviceStreams(
            uwave_test.x[8:9] + 10 * POISON_ABOVE,
            devices=1,
            start_ms=START_MS + 2 * 315 * good.interval_ms,
        )
        produce_device_streams(kafka_bootstrap, topics.input, poison)
        _wait_for(lambda: "serving /metrics for" in log(), 60, "the failure", log, worker)
        url = re.search(r"metrics=(http://\S+)", log()).group(1)
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            metrics = response.read().decode()
        code = worker.wait(timeout=60)
    finally:
        reader.close()
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
    assert code == 2, log()[-3000:]
    last = log().strip().splitlines()[-1]
    assert last.startswith("sensorstream run: error: the predictor failed on stream windows")
    assert "model refused a poisoned window" in last
    assert re.search(r"^sensorstream_predictor_errors_total 1\.0$", metrics, re.M)
    assert "Traceback" not in log().split("serving /metrics for")[1]
    assert _committed(kafka_bootstrap, topics.group, tp) == poison_from
    assert len(reader.records) == 8


def _csv_body(window) -> bytes:
    rows = ["group_id,time,dim_0,dim_1,dim_2"]
    rows += [f"g,{t},{a!r},{b!r},{c!r}" for t, (a, b, c) in enumerate(window.tolist())]
    return json.dumps({"csv": base64.b64encode("\n".join(rows).encode()).decode()}).encode()


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + "/time-series-classification", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_requests_the_model_refuses_fail_alone_while_the_worker_keeps_classifying(
    kafka_bootstrap, new_topic, shipped_predictor, uwave_test
) -> None:
    topics = Topics.fresh(new_topic)
    predictor = FailOnPoison(shipped_predictor)
    good_cases = list(range(20, 28))
    bodies = [(case, _csv_body(uwave_test.x[case])) for case in good_cases]
    bodies += [(None, _csv_body(uwave_test.x[30] + 10 * POISON_ABOVE)) for _ in range(4)]
    reader = EventReader(kafka_bootstrap, topics.output)
    with worker_in_thread(make_config(kafka_bootstrap, topics), predictor) as running:
        streams = DeviceStreams(uwave_test.x[:8], devices=4, start_ms=START_MS)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = pool.map(lambda item: (item[0], _post(running.url, item[1])), bodies * 2)
            produce_device_streams(kafka_bootstrap, topics.input, streams)
            answers = list(answers)
        reader.wait_for(8, timeout_s=60)
        assert running.get("/healthz")[0] == 200
        metrics = running.get("/metrics")[1].decode()
    reader.close()
    expected = shipped_predictor.predict_batch(uwave_test.x[good_cases])
    labels = shipped_predictor.manifest.labels
    for case, (status, answer) in answers:
        if case is None:
            assert (status, answer["errorCode"]) == (422, 422), answer
            assert "model refused a poisoned window" in answer["errorMsg"]
        else:
            assert status == 200, answer
            assert answer["result"]["label"] == labels[int(expected[case - 20].argmax())]
    assert len(reader.records) == 8
    assert re.search(r"^sensorstream_predictor_errors_total 0\.0$", metrics, re.M)
