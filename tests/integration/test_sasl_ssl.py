"""A secure cluster: the worker over SASL_SSL (SCRAM, a throwaway CA), bad credentials, no leaks.

This module starts its own broker (the session's stays PLAINTEXT) with an extra
SASL_SSL listener whose SCRAM users are created by Kafka's StorageTool.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from stream.config.loading import load_config
from stream.errors import SensorstreamError
from stream.jobs.demo import DeviceStreams
from stream.kafka.local_broker import LocalKafka
from stream.kafka.local_broker_files import SaslSslListener
from stream.kafka.local_broker_lookup import free_port
from stream.kafka.security import check_connection
from tests.integration.workers import REPO, Topics, worker_overrides

pytestmark = pytest.mark.integration

USER = "alice"
PASSWORD_ENV = "SENSORSTREAM_TEST_KAFKA_PASSWORD"
START_MS = 1_700_000_000_000


def openssl(*args: str, cwd: Path) -> None:
    """Run one openssl command; fail with its output."""
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def make_ca(folder: Path, name: str) -> Path:
    """A self-signed CA (key + cert) in `folder`; returns the cert path."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=folder,
    )
    return folder / "ca.pem"


def make_broker_pem(ca_dir: Path) -> Path:
    """The broker's PKCS#8 key and a cert for 127.0.0.1/localhost signed by the CA, in one PEM."""
    (ca_dir / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
        cwd=ca_dir,
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "broker.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "broker.crt",
        cwd=ca_dir,
    )
    pem = ca_dir / "broker.pem"
    pem.write_text((ca_dir / "broker.key").read_text() + (ca_dir / "broker.crt").read_text())
    return pem


@dataclass(frozen=True)
class SecureBroker:
    """The module's broker: PLAINTEXT for set-up, SASL_SSL for what is under test."""

    broker: LocalKafka
    listener: SaslSslListener
    ca_file: Path
    password: str

    def client_settings(self, mechanism: str = "SCRAM-SHA-256") -> dict[str, object]:
        """kafka-python settings of a test client logging in as the SCRAM user."""
        return {
            "bootstrap_servers": self.listener.bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": mechanism,
            "sasl_plain_username": USER,
            "sasl_plain_password": self.password,
            "ssl_cafile": str(self.ca_file),
        }


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A broker with a SASL_SSL listener, a throwaway CA and one SCRAM user (random password)."""
    root = tmp_path_factory.mktemp("secure-kafka")
    ca_file = make_ca(root / "pki", "sensorstream-test-ca")
    password = f"pw-{uuid.uuid4().hex}"
    listener = SaslSslListener(
        port=free_port(),
        keystore_pem=make_broker_pem(root / "pki"),
        scram_users=((USER, password),),
    )
    broker = LocalKafka(port=free_port(), data_dir=root / "data", sasl_ssl=listener)
    try:
        broker.start()
        yield SecureBroker(broker, listener, ca_file, password)
    finally:
        broker.stop()


def secure_overrides(secure: SecureBroker, topics: Topics, *extra: str) -> list[str]:
    """--set values for a worker that reaches the broker only through SASL_SSL."""
    return worker_overrides(
        secure.listener.bootstrap,
        topics,
        'kafka.security_protocol="SASL_SSL"',
        'kafka.sasl_mechanism="SCRAM-SHA-512"',
        f'kafka.sasl_username="{USER}"',
        f'kafka.sasl_password_env="{PASSWORD_ENV}"',
        f'kafka.ssl_cafile="{secure.ca_file}"',
        "kafka.request_timeout_ms=5000",
        *extra,
    )


def run_cli(
    overrides: list[str], password: str, log_path: Path, log_level: str
) -> subprocess.Popen:
    """`sensorstream run` as a child with the password in its environment only."""
    args = [sys.executable, "-m", "stream.cli", "--log-level", log_level, "run"]
    for item in overrides:
        args += ["--set", item]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORSTREAM__")}
    env[PASSWORD_ENV] = password
    with open(log_path, "wb") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def fresh_topics(secure: SecureBroker) -> Topics:
    """An input topic with 2 partitions on the secure broker (made over PLAINTEXT)."""
    name = f"secure-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=secure.broker.bootstrap)
    try:
        admin.create_topics(
            {name: {"num_partitions": 2, "replication_factor": 1}}, wait_for_metadata=True
        )
    finally:
        admin.close()
    return Topics(name, f"{name}.events", f"{name}.dlq", f"{name}.alerts", f"{name}.group")


def read_secure(secure: SecureBroker, topic: str, count: int, timeout_s: float) -> list:
    """Records of `topic` read over SASL_SSL from the beginning, until `count` or the timeout."""
    consumer = KafkaConsumer(
        group_id=None, auto_offset_reset="earliest", **secure.client_settings()
    )
    records: list = []
    try:
        deadline = time.monotonic() + timeout_s
        while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
            time.sleep(0.2)
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def test_worker_over_sasl_ssl_consumes_produces_and_never_prints_the_password(
    secure, uwave_test, tmp_path
) -> None:
    topics = fresh_topics(secure)
    streams = DeviceStreams(uwave_test.x[:4], devices=2, start_ms=START_MS)
    producer = KafkaProducer(acks="all", **secure.client_settings())
    for step in streams.steps():
        for key, value, _ in step:
            producer.send(topics.input, key=key, value=value)
    producer.send(topics.input, key=b"glove-000", value=b"{not json")  # one dead letter too
    producer.flush(timeout=30)
    producer.close()

    log_path = tmp_path / "worker.log"
    worker = run_cli(secure_overrides(secure, topics), secure.password, log_path, "DEBUG")
    try:
        events = read_secure(secure, topics.output, len(streams.expected()), timeout_s=60)
        dead = read_secure(secure, topics.dead_letters, 1, timeout_s=10)
        url = re.search(r"http serving url=(\S+)", log_path.read_text(errors="replace"))
        assert url, "the worker never served HTTP"
        pages = b"".join(
            urllib.request.urlopen(url.group(1) + p, timeout=5).read()
            for p in ("/metrics", "/status.json", "/")
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        exit_code = worker.wait(timeout=60)
    output = log_path.read_text(errors="replace")

    keys = {
        (e["device_id"], e["window_start_ts"]) for e in map(orjson.loads, (r.value for r in events))
    }
    assert keys == set(streams.expected())
    assert [r.value for r in dead] == [b"{not json"]
    assert exit_code == 0, output[-3000:]
    assert "Authenticated as alice via SASL / SCRAM-SHA-512" in output  # kafka-python, at DEBUG
    assert "Starting KafkaAdminClient with configuration" in output  # the dump that used to leak it
    assert secure.password not in output
    assert secure.password.encode() not in pages


def test_wrong_password_stops_start_up_with_one_clear_line_in_bounded_time(
    secure, tmp_path
) -> None:
    topics = fresh_topics(secure)
    log_path = tmp_path / "worker.log"
    wrong = f"wrong-{uuid.uuid4().hex}"
    started_s = time.monotonic()
    worker = run_cli(secure_overrides(secure, topics), wrong, log_path, "INFO")
    exit_code = worker.wait(timeout=60)
    elapsed_s = time.monotonic() - started_s
    output = log_path.read_text(errors="replace")

    assert exit_code == 2, output[-3000:]
    assert elapsed_s < 30
    assert "Traceback" not in output
    last = output.strip().splitlines()[-1]
    assert last == (
        f"sensorstream run: error: kafka: the SASL_SSL listener {secure.listener.bootstrap} "
        f"refused the SCRAM-SHA-512 login as 'alice'; check kafka.sasl_username, "
        f"kafka.sasl_mechanism and the password in ${PASSWORD_ENV}"
    )
    assert wrong not in output and secure.password not in output


def test_a_broker_certificate_from_another_ca_is_reported_as_a_tls_failure(
    secure, tmp_path, monkeypatch
) -> None:
    other_ca = make_ca(tmp_path / "other", "some-other-ca")
    config = load_config(
        None,
        [
            f'kafka.bootstrap_servers="{secure.listener.bootstrap}"',
            'kafka.security_protocol="SASL_SSL"',
            'kafka.sasl_mechanism="SCRAM-SHA-256"',
            f'kafka.sasl_username="{USER}"',
            f'kafka.sasl_password_env="{PASSWORD_ENV}"',
            f'kafka.ssl_cafile="{other_ca}"',
            "kafka.request_timeout_ms=3000",
        ],
        environ={},
    )
    monkeypatch.setenv(PASSWORD_ENV, secure.password)
    with pytest.raises(SensorstreamError) as failure:
        check_connection(config.kafka)
    message = str(failure.value)
    assert message.startswith(
        f"kafka: TLS handshake with the SASL_SSL listener {secure.listener.bootstrap} failed "
        "(certificate verify failed"
    )
    assert "kafka.ssl_cafile" in message and "\n" not in message
    assert secure.password not in message
