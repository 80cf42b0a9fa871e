"""A real Prometheus scrapes a running worker and evaluates the shipped alert rules."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from stream.kafka.local_broker_lookup import free_port
from tests.integration.workers import REPO, Topics, feeding, make_config, worker_in_thread

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
START_MS = 1_700_000_000_000
BAD_PER_GOOD = 9  # 90 % dead letters, far above the rule's 5 %


def mostly_bad_records() -> Iterator[list[tuple[bytes, bytes]]]:
    """Endless steps of one valid sample and BAD_PER_GOOD malformed records."""
    for step in itertools.count():
        sample = {"device_id": "dev-1", "ts": START_MS + 10 * step, "values": [0.1, -0.2, 9.8]}
        yield [(b"dev-1", orjson.dumps(sample))] + [(b"dev-1", b'{"device_id": ')] * BAD_PER_GOOD


@contextmanager
def prometheus_scraping(target: str, folder: Path) -> Iterator[str]:
    """Prometheus (127.0.0.1) scraping `target` every 1 s with the shipped rules, at its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(RULES, folder / "alerts.yml")
    (folder / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files:\n  - alerts.yml\n"
        "scrape_configs:\n  - job_name: sensorstream\n"
        f'    static_configs:\n      - targets: ["{target}"]\n'
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / "prometheus.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
    )
    try:
        wait_until(lambda: _get(url + "/-/ready") is not None, 30, "Prometheus never became ready")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except OSError:
        return None


def query(prometheus: str, promql: str) -> list[dict]:
    """The instant vector `promql` evaluates to now (via /api/v1/query)."""
    body = _get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    assert body is not None, f"query failed: {promql}"
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def alerts(prometheus: str) -> list[dict]:
    """Active (pending or firing) alerts (via /api/v1/alerts)."""
    body = _get(prometheus + "/api/v1/alerts")
    assert body is not None
    return json.loads(body)["data"]["alerts"]


def wait_until(check, timeout_s: float, message: str) -> None:
    """Poll `check` every 0.25 s until it is truthy; fail with `message` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(message)


def test_prometheus_scrapes_the_worker_and_fires_the_dead_letter_rule(
    kafka_bootstrap, new_topic, shipped_predictor, tmp_path
) -> None:
    topics = Topics.fresh(new_topic)
    config = make_config(kafka_bootstrap, topics, 'metrics.host="127.0.0.1"')
    with worker_in_thread(config, shipped_predictor) as running:
        target = running.url.removeprefix("http://")
        with (
            feeding(kafka_bootstrap, topics.input, mostly_bad_records(), step_s=0.1),
            prometheus_scraping(target, tmp_path / "prometheus") as prometheus,
        ):
            wait_until(
                lambda: query(prometheus, 'up{job="sensorstream"} == 1'),
                20,
                "Prometheus never scraped the worker",
            )
            wait_until(
                lambda: query(prometheus, "sensorstream_dead_letters_total"),
                20,
                "no dead-letter series in Prometheus",
            )
            consumed = query(prometheus, "sensorstream_records_consumed_total")
            model = query(prometheus, "sensorstream_model_info")

            seen: list[str] = []

            def dead_letter_alert_firing() -> bool:
                for alert in alerts(prometheus):
                    if alert["labels"]["alertname"] == "SensorstreamDeadLetterRateHigh":
                        seen.append(alert["state"])
                        return alert["state"] == "firing"
                return False

            started_s = time.monotonic()
            # 1 s scrapes need ~2-3 s before rate() has two points, then the rule's `for: 15s`
            wait_until(
                dead_letter_alert_firing, 45, f"the dead-letter rule never fired (seen {seen})"
            )
            fired_after_s = time.monotonic() - started_s
            ratio = query(
                prometheus,
                "sum(rate(sensorstream_dead_letters_total[1m])) / "
                "sum(rate(sensorstream_records_consumed_total[1m]))",
            )
            active = {a["labels"]["alertname"]: a for a in alerts(prometheus)}

    assert [s["metric"]["topic"] for s in consumed] == [topics.input]
    assert consumed[0]["metric"]["job"] == "sensorstream"
    assert float(consumed[0]["value"][1]) > 0
    manifest = shipped_predictor.manifest
    assert [(s["metric"]["name"], s["metric"]["version"]) for s in model] == [
        (manifest.name, manifest.version)
    ]
    assert "pending" in seen and seen[-1] == "firing"  # the `for:` clause held it first
    assert fired_after_s >= 10  # not firing before its `for: 15s` could have elapsed
    fired = active["SensorstreamDeadLetterRateHigh"]
    assert fired["labels"]["instance"] == target and fired["labels"]["severity"] == "warning"
    assert 0.8 < float(ratio[0]["value"][1]) <= 0.95  # 9 of every 10 records
    assert "SensorstreamWorkerDown" not in active
