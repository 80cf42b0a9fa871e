"""The worker on a real broker with the shipped model: events, dead letters, metrics."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream.jobs.demo import DeviceStreams
from tests.integration.workers import EventReader, Topics, make_config, worker_in_thread

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000


def _stream_records(streams: DeviceStreams) -> list[tuple[bytes, bytes]]:
    return [(key, value) for step in streams.steps() for key, value, _ in step]


def _metric_values(text: str) -> dict[str, float]:
    """`name{label="v"}` (or bare name) -> value, for every sample in /metrics."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def test_uwave_stream_yields_one_event_per_window_equal_to_offline_predict(
    kafka_bootstrap, new_topic, produce, shipped_predictor, uwave_test, cli_predictions
) -> None:
    topics = Topics.fresh(new_topic, partitions=4)
    streams = DeviceStreams(uwave_test.x, devices=10, start_ms=START_MS)
    produce(kafka_bootstrap, topics.input, _stream_records(streams))
    config = make_config(kafka_bootstrap, topics, "batching.max_batch=32")
    reader = EventReader(kafka_bootstrap, topics.output)
    with worker_in_thread(config, shipped_predictor):
        events = reader.wait_for(len(uwave_test.x), timeout_s=120)
        time.sleep(1.0)  # anything extra (a duplicate) would arrive now
        events = reader.wait_for(len(uwave_test.x) + 1, timeout_s=1.0)
    reader.close()

    expected = streams.expected()
    keys = [(e["device_id"], e["window_start_ts"]) for e in events]
    assert len(keys) == len(set(keys)) == len(expected)
    assert set(keys) == set(expected)
    cases = np.array([expected[k] for k in keys])
    probabilities = np.array([e["probabilities"] for e in events])
    np.testing.assert_allclose(probabilities, cli_predictions[cases], atol=1e-5)
    assert [e["class_id"] for e in events] == cli_predictions[cases].argmax(axis=1).tolist()
    accuracy = float(
        np.mean([e["class_id"] == uwave_test.y[c] for e, c in zip(events, cases, strict=True)])
    )
    assert accuracy >= 0.875


def _bad_records(device: str) -> list[tuple[str, bytes | None, bytes | None]]:
    """(expected reason, key, value) for every dead-letter reason a record can earn."""
    ok = {"device_id": device, "ts": START_MS, "values": [0.1, 0.2, 0.3]}

    def bad(**change: object) -> bytes:
        return orjson.dumps({**ok, **change})

    without_ts = {k: v for k, v in ok.items() if k != "ts"}
    return [
        ("invalid_utf8", device.encode(), b'{"device_id": "\xff\xfe"}'),
        ("invalid_json", device.encode(), b'{"device_id": '),
        ("invalid_json", device.encode(), None),
        ("not_an_object", device.encode(), b"[1, 2, 3]"),
        ("missing_field", device.encode(), orjson.dumps(without_ts)),
        ("unknown_field", device.encode(), bad(colour="red")),
        ("wrong_type", device.encode(), bad(values=[0.1, True, 0.3])),
        ("wrong_channel_count", device.encode(), bad(values=[0.1, 0.2])),
        (
            "non_finite_value",
            device.encode(),
            b'{"device_id": "%s", "ts": 1, "values": [1e400, 0, 0]}' % device.encode(),
        ),
        ("too_large", device.encode(), bad(values=[[0.0, 0.0, 0.0]] * 10_001, interval_ms=10)),
        ("bad_timestamp", device.encode(), bad(ts="2024-11-22T12:00:00")),
        ("bad_interval", device.encode(), bad(values=[[0.1, 0.2, 0.3]], interval_ms=0)),
        ("empty_values", device.encode(), bad(values=[])),
        ("key_mismatch", b"someone-else", bad()),
    ]


def test_malformed_records_go_to_dead_letters_with_reason_and_original_bytes(
    kafka_bootstrap, new_topic, produce, shipped_predictor, uwave_test
) -> None:
    topics = Topics.fresh(new_topic, partitions=2)
    streams = DeviceStreams(uwave_test.x[:24], devices=4, start_ms=START_MS)
    good = _stream_records(streams)
    bad = _bad_records("glove-000")
    mixed: list[tuple[bytes | None, bytes | None]] = []
    every = max(len(good) // len(bad), 1)
    for i, record in enumerate(good):
        mixed.append(record)
        if i % every == 0 and i // every < len(bad):
            mixed.append(bad[i // every][1:])
    assert sum(1 for r in mixed if r not in good) == len(bad)
    produce(kafka_bootstrap, topics.input, mixed)

    config = make_config(kafka_bootstrap, topics)
    events_reader = EventReader(kafka_bootstrap, topics.output)
    dlq_reader = EventReader(kafka_bootstrap, topics.dead_letters)
    with worker_in_thread(config, shipped_predictor) as running:
        events = events_reader.wait_for(24, timeout_s=90)
        dlq_reader.wait_for_records(len(bad), timeout_s=30)
        assert running.thread.is_alive()
        status, _ = running.get("/healthz")
        assert status == 200
    events_reader.close()
    dlq_reader.close()

    assert {(e["device_id"], e["window_start_ts"]) for e in events} == set(streams.expected())
    dead = dlq_reader.records
    assert len(dead) == len(bad)

    def order(item: tuple) -> tuple:
        return (item[0], item[1] or b"", item[2] or b"")

    got = sorted(
        ((dict(r.headers)["dlq.reason"].decode(), r.key, r.value) for r in dead), key=order
    )
    assert got == sorted(bad, key=order)
    for record in dead:
        headers = dict(record.headers)
        assert headers["dlq.source.topic"].decode() == topics.input
        assert int(headers["dlq.source.offset"]) >= 0
        assert headers["dlq.message"]


def test_metrics_and_readiness_agree_with_what_was_produced_and_consumed(
    kafka_bootstrap, new_topic, produce, shipped_predictor, uwave_test
) -> None:
    topics = Topics.fresh(new_topic, partitions=2)
    streams = DeviceStreams(uwave_test.x[:16], devices=4, start_ms=START_MS)
    good = _stream_records(streams)
    bad = [(b"glove-000", b"not json"), (b"glove-001", b'{"device_id": "glove-001"}')]
    produce(kafka_bootstrap, topics.input, good + bad)
    config = make_config(kafka_bootstrap, topics)
    reader = EventReader(kafka_bootstrap, topics.output)
    with worker_in_thread(config, shipped_predictor) as running:
        reader.wait_for(16, timeout_s=90)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, body = running.get("/readyz")
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200, body
        time.sleep(1.5)  # a housekeeping pass refreshes the gauges
        status, body = running.get("/metrics")
        assert status == 200
        metrics = _metric_values(body.decode())
    reader.close()

    samples = sum(len(case) for case in uwave_test.x[:16])
    assert (
        metrics[f'sensorstream_records_consumed_total{{topic="{topics.input}"}}'] == len(good) + 2
    )
    assert metrics["sensorstream_samples_consumed_total"] == samples
    assert metrics['sensorstream_dead_letters_total{reason="invalid_json"}'] == 1
    assert metrics['sensorstream_dead_letters_total{reason="missing_field"}'] == 1
    assert metrics["sensorstream_windows_emitted_total"] == 16
    assert sum(v for k, v in metrics.items() if k.startswith("sensorstream_events_total{")) == 16
    assert metrics["sensorstream_batch_size_count"] >= 1
    assert metrics["sensorstream_end_to_end_latency_seconds_count"] == 16
    assert metrics["sensorstream_active_devices"] == 4
    assert metrics["sensorstream_assigned_partitions"] == 2
    lags = [v for k, v in metrics.items() if k.startswith("sensorstream_consumer_lag{")]
    assert lags and all(lag == 0 for lag in lags)
    info = [k for k in metrics if k.startswith("sensorstream_model_info{")]
    assert info and f'name="{shipped_predictor.manifest.name}"' in info[0]


def test_classification_requests_to_a_running_worker_ride_in_its_batches(
    kafka_bootstrap, new_topic, produce, shipped_predictor, uwave_test, cli_predictions
) -> None:
    import base64
    import concurrent.futures
    import json
    import urllib.request

    topics = Topics.fresh(new_topic, partitions=1)
    streams = DeviceStreams(uwave_test.x[:8], devices=2, start_ms=START_MS)
    produce(kafka_bootstrap, topics.input, _stream_records(streams))
    config = make_config(kafka_bootstrap, topics)

    def csv_of(case: int) -> bytes:
        rows = ["group_id,time,dim_0,dim_1,dim_2"]
        rows += [
            f"{case},{t},{a!r},{b!r},{c!r}"
            for t, (a, b, c) in enumerate(uwave_test.x[case].tolist())
        ]
        return ("\n".join(rows) + "\n").encode()

    def ask(url: str, case: int) -> tuple[int, dict]:
        body = json.dumps({"csv": base64.b64encode(csv_of(case)).decode()}).encode()
        request = urllib.request.Request(
            url + "/time-series-classification",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return case, json.loads(response.read())

    reader = EventReader(kafka_bootstrap, topics.output)
    with worker_in_thread(config, shipped_predictor) as running:
        cases = list(range(20, 36))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda c: ask(running.url, c), cases))
        reader.wait_for(8, timeout_s=60)
        metrics = _metric_values(running.get("/metrics")[1].decode())
    reader.close()
    labels = shipped_predictor.manifest.labels
    for case, answer in answers:
        assert answer["errorCode"] == 0, answer
        expected = cli_predictions[case]
        assert answer["result"]["label"] == labels[int(expected.argmax())]
        assert abs(answer["result"]["score"] - float(expected.max())) < 1e-5
    assert len(reader.records) == 8  # the stream's events, none for the HTTP windows
    assert metrics['sensorstream_classify_requests_total{status="200"}'] == len(cases)


def test_late_and_duplicate_samples_are_dead_lettered_when_the_policy_says_so(
    kafka_bootstrap, new_topic, produce, shipped_predictor
) -> None:
    topics = Topics.fresh(new_topic, partitions=1)

    def sample(ts: int) -> tuple[bytes, bytes]:
        return b"glove-9", orjson.dumps(
            {"device_id": "glove-9", "ts": ts, "values": [0.1, 0.2, 0.3]}
        )

    records = [sample(START_MS + 10 * i) for i in range(50)]
    duplicate, late = sample(START_MS + 10 * 49), sample(START_MS + 10 * 20)
    records += [duplicate, late, sample(START_MS + 10 * 50)]
    produce(kafka_bootstrap, topics.input, records)
    config = make_config(kafka_bootstrap, topics, 'windows.late_policy="dead_letter"')
    dlq = EventReader(kafka_bootstrap, topics.dead_letters)
    with worker_in_thread(config, shipped_predictor) as running:
        dlq.wait_for_records(2, timeout_s=60)
        time.sleep(1.5)
        metrics = _metric_values(running.get("/metrics")[1].decode())
    dlq.close()
    got = [(dict(r.headers)["dlq.reason"].decode(), r.value) for r in dlq.records]
    assert got == [("duplicate_sample", duplicate[1]), ("late_sample", late[1])]
    assert metrics['sensorstream_dead_letters_total{reason="late_sample"}'] == 1
    assert metrics['sensorstream_window_samples_total{outcome="duplicates"}'] == 1
    assert metrics['sensorstream_window_samples_total{outcome="late"}'] == 1


def test_a_label_alert_fires_to_the_alerts_topic_and_counts(
    kafka_bootstrap, new_topic, produce, shipped_predictor, uwave_test, cli_predictions, tmp_path
) -> None:
    topics = Topics.fresh(new_topic, partitions=1)
    predicted = cli_predictions.argmax(axis=1)
    label_id = int(np.bincount(predicted).argmax())
    cases = np.flatnonzero(predicted == label_id)[:6]  # windows the model labels alike
    streams = DeviceStreams(uwave_test.x[cases], devices=1, start_ms=START_MS)
    produce(kafka_bootstrap, topics.input, _stream_records(streams))
    label = shipped_predictor.manifest.labels[label_id]
    config_file = tmp_path / "alerts.toml"
    config_file.write_text(
        f'[[alerts]]\nname = "steady"\nlabel = "{label}"\nmin_score = 0.0\n'
        "min_consecutive = 3\ncooldown_s = 0\n"
    )
    from stream.config.loading import load_config
    from tests.integration.workers import worker_overrides

    config = load_config(config_file, worker_overrides(kafka_bootstrap, topics), environ={})
    alerts = EventReader(kafka_bootstrap, topics.alerts)
    with worker_in_thread(config, shipped_predictor) as running:
        fired = alerts.wait_for(2, timeout_s=60)
        time.sleep(1.0)
        metrics = _metric_values(running.get("/metrics")[1].decode())
    alerts.close()
    assert len(fired) == 2  # six matching windows in a row, a run of three fires twice
    assert all(a["rule"] == "steady" and a["label"] == label for a in fired)
    assert [len(a["event_ids"]) for a in fired] == [3, 3]
    assert metrics['sensorstream_alerts_total{rule="steady"}'] == 2
