"""The config sections and alert rules: bounds, choices, cross-field checks, frozen values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream.config.loading import load_config
from stream.config.schema import AlertRule, Config
from stream.errors import ConfigError


def test_config_is_frozen():
    config = Config()
    with pytest.raises(ValidationError):
        config.windows.hop = 3  # type: ignore[misc]


def test_compression_none_spelled_as_string_means_no_compression():
    assert (
        load_config(None, ['kafka.compression_type="gzip"'], environ={}).kafka.compression_type
        == "gzip"
    )
    assert (
        load_config(None, ["kafka.compression_type=none"], environ={}).kafka.compression_type
        is None
    )


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd", "snappy"])
def test_every_kafka_codec_is_accepted_as_compression_type(codec):
    config = load_config(None, [f'kafka.compression_type="{codec}"'], environ={})
    assert config.kafka.compression_type == codec


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[batching]\nmax_batch = 64\nmax_pending_windows = 32\n",
            "batching.max_pending_windows: expected at least max_batch (64), got 32",
        ),
        (
            '[kafka]\noutput_topic = "sensor-samples"\n',
            "kafka.output_topic: must differ from every input topic (a loop otherwise), "
            "got 'sensor-samples'",
        ),
        (
            "[kafka]\nfetch_max_wait_ms = 40000\n",
            "kafka.fetch_max_wait_ms: expected less than request_timeout_ms (30000), got 40000",
        ),
        (
            "[windows]\nreorder_ms = 2000\n",
            "windows.reorder_ms: expected less than gap_ms (1000), got 2000",
        ),
        (
            "[delivery]\nshutdown_deadline_s = 5\n",
            "delivery.producer_flush_timeout_s: expected less than shutdown_deadline_s (5.0), "
            "got 10.0",
        ),
    ],
)
def test_cross_field_checks_name_the_keys(write_config, toml, message):
    path = write_config(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}: {message}"


def test_state_topic_is_derived_from_the_group_and_never_an_input():
    assert Config().kafka.state_topic_name == "sensorstream-window-anchors"
    with pytest.raises(ConfigError, match=r"^--set: kafka.group_id: its changelog topic"):
        load_config(
            None, ['kafka.input_topics=["g-window-anchors"]', "kafka.group_id=g"], environ={}
        )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            'kafka.bootstrap_servers="127.0.0.1:abc"',
            "kafka.bootstrap_servers: expected host:port[,host:port...] with ports 1-65535, e.g. "
            "\"127.0.0.1:9092\" (bad entry '127.0.0.1:abc'), got '127.0.0.1:abc'",
        ),
        ('kafka.bootstrap_servers="a:9092,b:70000"', "(bad entry 'b:70000')"),
        ('kafka.bootstrap_servers="a:9092,"', "(bad entry '')"),
        ('kafka.bootstrap_servers="broker"', "(bad entry 'broker')"),
        (
            "windows.max_devices=1000000000000",
            "windows.max_devices: expected an integer <= 100000000",
        ),
        ("windows.hop=100000000000000000000000", "windows.hop: expected an integer <= 2147483647"),
        ("windows.length=2000000", "windows.length: expected an integer <= 1000000"),
        ("windows.idle_ms=10000000000000", "windows.idle_ms: expected an integer <= 1000000000000"),
        ("windows.max_fill=5000", "windows.max_fill: expected at most gap_ms (1000), got 5000"),
        ("windows.interval_ms=inf", "windows.interval_ms: expected a finite number, got inf"),
        ("windows.interval_ms=nan", "windows.interval_ms: expected a finite number, got nan"),
        ("kafka.session_timeout_ms=3000000000", "kafka.session_timeout_ms: expected an integer <="),
        ("kafka.max_partition_fetch_bytes=2147483648", "expected an integer <= 2147483647"),
        ('kafka.output_topic="events out"', "kafka.output_topic: expected Kafka topic names"),
        ('kafka.input_topics=["ok", ".."]', "not '..'"),
        ("kafka.group_id=" + "g" * 240, "kafka.group_id: its changelog topic"),
        ("delivery.shutdown_deadline_s=inf", "delivery.shutdown_deadline_s: expected a finite"),
        ("delivery.producer_flush_timeout_s=nan", "expected a finite number, got nan"),
        ("model.threads=100000", "model.threads: expected an integer <= 1024"),
        ("batching.max_batch=1000000", "batching.max_batch: expected an integer <= 65536"),
        ("records.max_record_bytes=3000000000", "records.max_record_bytes: expected an integer"),
        ("drift.window_samples=10", "drift.window_samples: expected an integer >= 100, got 10"),
        ("drift.window_events=100000000", "drift.window_events: expected an integer <= 10000000"),
        ("drift.interval_s=0.01", "drift.interval_s: expected a number >= 0.1, got 0.01"),
        ("drift.interval_s=inf", "drift.interval_s: expected a finite number, got inf"),
        ("model.min_score=1.5", "model.min_score: expected a number <= 1.0, got 1.5"),
        ("model.min_score=-0.1", "model.min_score: expected a non-negative number, got -0.1"),
        ('model.abstain_label=""', "model.abstain_label: String should have at least 1"),
    ],
)
def test_out_of_bounds_values_are_one_line_naming_the_key(item, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, [item], environ={})
    assert message in str(caught.value)
    assert str(caught.value).startswith("--set: ")
    assert "\n" not in str(caught.value)


def test_drift_and_abstain_defaults_and_overrides():
    config = Config()
    assert (config.model.min_score, config.model.abstain_label) == (0.0, "unknown")
    assert (config.drift.window_samples, config.drift.window_events) == (100_000, 1000)
    assert config.drift.interval_s == 10.0
    items = ["model.min_score=1", 'model.abstain_label="unsure"', "drift.interval_s=2"]
    config = load_config(None, items, environ={})
    assert (config.model.min_score, config.model.abstain_label) == (1.0, "unsure")
    assert config.drift.interval_s == 2.0


def test_bootstrap_servers_accept_lists_hostnames_and_bracketed_ipv6():
    servers = "kafka-1.internal:9092, 10.0.0.2:9093,[::1]:9094"
    assert load_config(None, [f'kafka.bootstrap_servers="{servers}"'], environ={})


def rule(**fields: object) -> AlertRule:
    return AlertRule(**{"name": "r", "label": "1.0", **fields})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_score": 1.5}, "less than or equal to 1"),
        ({"min_score": -0.1}, "greater than or equal to 0"),
        ({"min_score": 0.8, "max_score": 0.5}, "max_score"),
        ({"min_consecutive": 0}, "greater than or equal to 1"),
        ({"cooldown_s": -1.0}, "greater than or equal to 0"),
        ({"name": ""}, "at least 1 character"),
        ({"severity": "high"}, "Extra inputs are not permitted"),
    ],
    ids=[
        "min over 1",
        "min below 0",
        "max below min",
        "zero windows",
        "negative cooldown",
        "empty name",
        "unknown key",
    ],
)
def test_rule_validation_rejects(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        rule(**fields)


def test_rules_are_frozen() -> None:
    with pytest.raises(ValidationError):
        rule().label = "2.0"  # type: ignore[misc]
