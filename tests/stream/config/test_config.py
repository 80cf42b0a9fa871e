"""The worker config: defaults, one-line errors naming the key, override precedence, paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from stream.config.loading import load_config
from stream.config.model_checks import check_against_model
from stream.config.schema import Config
from stream.errors import ConfigError, SensorstreamError

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def write_config(tmp_path: Path):
    """Factory: write TOML text to a config file in a fresh folder and return its path."""

    def write(text: str, name: str = "worker.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def test_shipped_config_toml_equals_the_built_in_defaults():
    loaded = load_config(REPO_ROOT / "config.toml", environ={})
    assert loaded.model_dump(exclude={"model"}) == Config().model_dump(exclude={"model"})
    assert loaded.model.path == REPO_ROOT / "models" / "uwave"
    assert loaded.kafka.bootstrap_servers == "127.0.0.1:9092"


def test_no_file_gives_defaults_with_model_path_resolved_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None, environ={})
    assert config.windows.length == 315 and config.windows.hop == 315
    assert config.kafka.compression_type is None
    assert config.model.path == tmp_path / "models" / "uwave"


def test_relative_model_path_in_file_resolves_against_the_files_folder(write_config, tmp_path):
    path = write_config('[model]\npath = "exported/m1"\n')
    assert load_config(path, environ={}).model.path == tmp_path / "exported" / "m1"


def test_absolute_model_path_is_kept(write_config, tmp_path):
    path = write_config(f'[model]\npath = "{tmp_path / "abs"}"\n')
    assert load_config(path, environ={}).model.path == tmp_path / "abs"


def test_relative_model_path_from_set_resolves_against_cwd(write_config, tmp_path, monkeypatch):
    path = write_config("")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path, ["model.path=mine"], environ={})
    assert config.model.path == elsewhere / "mine"


def test_config_is_frozen():
    config = Config()
    with pytest.raises(ValidationError):
        config.windows.hop = 3  # type: ignore[misc]


def test_set_beats_environment_which_beats_file(write_config):
    path = write_config("[windows]\nhop = 100\nlength = 300\n")
    env = {"SENSORSTREAM__WINDOWS__HOP": "50", "SENSORSTREAM__WINDOWS__LENGTH": "200"}
    config = load_config(path, ["windows.hop=10"], environ=env)
    assert config.windows.hop == 10  # --set over env over file
    assert config.windows.length == 200  # env over file


def test_override_values_parse_as_toml_else_as_strings():
    config = load_config(
        None,
        [
            'kafka.input_topics=["a","b"]',
            "model.device=gpu",
            'kafka.group_id="g1"',
            "windows.interval_ms=7.8125",
        ],
        environ={"SENSORSTREAM__MODEL__DEVICE": '"gpu:1"'},
    )
    assert config.kafka.input_topics == ["a", "b"]
    assert config.model.device == "gpu"
    assert config.kafka.group_id == "g1"
    assert config.windows.interval_ms == 7.8125


def test_environment_names_are_case_insensitive_and_other_variables_ignored():
    env = {"SENSORSTREAM__Metrics__Port": "0", "SENSORSTREAM_BOOTSTRAP": "x:1", "HOME": "/"}
    assert load_config(None, environ=env).metrics.port == 0


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
        ("[windows]\nhop = -3\n", "windows.hop: expected a positive integer, got -3"),
        ("[windows]\nlength = 0\n", "windows.length: expected a positive integer, got 0"),
        ('[windows]\nhop = "10"\n', "windows.hop: expected an integer, got '10'"),
        ("[windows]\nhop = 1.5\n", "windows.hop: expected an integer, got 1.5"),
        ("[windows]\nhop = true\n", "windows.hop: expected an integer, got True"),
        (
            '[windows]\ngap_policy = "zero"\n',
            "windows.gap_policy: expected one of 'reset' or 'fill', got 'zero'",
        ),
        (
            '[model]\ndevice = "tpu"\n',
            'model.device: expected "cpu", "gpu" or "gpu:N", got \'tpu\'',
        ),
        (
            "[batching]\nmax_wait_ms = -1\n",
            "batching.max_wait_ms: expected a non-negative integer, got -1",
        ),
        ("[metrics]\nport = 70000\n", "metrics.port: expected an integer <= 65535, got 70000"),
        (
            "[kafka]\ninput_topics = []\n",
            "kafka.input_topics: expected a non-empty list of topic names, "
            'e.g. ["sensor-samples"], got []',
        ),
        (
            '[kafka]\ncompression_type = "brotli"\n',
            'kafka.compression_type: expected one of "none", "gzip", "lz4", "zstd", "snappy", '
            "got 'brotli'",
        ),
        (
            "[kafka]\nstall_timeout_s = 0\n",
            "kafka.stall_timeout_s: expected a positive number, got 0",
        ),
        (
            '[delivery]\nmode = "twice"\n',
            "delivery.mode: expected one of 'at-least-once' or 'exactly-once', got 'twice'",
        ),
    ],
)
def test_bad_value_gives_one_line_naming_file_key_and_form(write_config, toml, message):
    path = write_config(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}: {message}"
    assert "\n" not in str(caught.value)


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


def test_unknown_key_suggests_the_closest(write_config):
    path = write_config('[kafka]\nbootstrap = "x:1"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert (
        str(caught.value)
        == f"{path}: unknown key kafka.bootstrap (did you mean bootstrap_servers?)"
    )


def test_unknown_section_suggests_the_closest(write_config):
    path = write_config("[windws]\nhop = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}: unknown section [windws] (did you mean windows?)"


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope.toml: config file not found"):
        load_config(missing, environ={})


def test_invalid_toml_names_the_line(write_config):
    path = write_config("[windows]\nhop = 10\nlength = = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value).startswith(f"{path}: invalid TOML:")
    assert "line 3" in str(caught.value)


def test_errors_from_environment_name_the_variable():
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={"SENSORSTREAM__WINDOWS__HOP": "-1"})
    assert (
        str(caught.value)
        == "SENSORSTREAM__WINDOWS__HOP: windows.hop: expected a positive integer, got -1"
    )


def test_malformed_environment_name_is_rejected():
    with pytest.raises(
        ConfigError, match=r"^SENSORSTREAM__HOP: expected an environment variable named"
    ):
        load_config(None, environ={"SENSORSTREAM__HOP": "1"})


def test_errors_from_set_name_the_flag():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["windows.max_fill=-2"], environ={})
    assert str(caught.value) == "--set: windows.max_fill: expected a non-negative integer, got -2"
    with pytest.raises(
        ConfigError, match=r"^--set: unknown key model.devise \(did you mean device\?\)$"
    ):
        load_config(None, ["model.devise=gpu"], environ={})


def test_malformed_set_item_is_rejected():
    with pytest.raises(ConfigError, match=r"^--set windowshop: expected section.key=value"):
        load_config(None, ["windowshop"], environ={})


def test_config_error_is_a_sensorstream_error():
    assert issubclass(ConfigError, SensorstreamError)


def test_check_against_model_accepts_matching_length():
    check_against_model(Config(), window_length=315, channels=3)


def test_check_against_model_names_the_key_when_length_differs():
    config = load_config(None, ["windows.length=100", "windows.hop=50"], environ={})
    with pytest.raises(ConfigError) as caught:
        check_against_model(config, window_length=315, channels=3)
    text = str(caught.value)
    assert text.startswith("windows.length: the model at ")
    assert "takes windows of 315 samples, got 100; set windows.length = 315" in text


def test_check_against_model_rejects_a_model_without_channels():
    with pytest.raises(ConfigError, match=r"^model.path: .* declares 0 channels"):
        check_against_model(Config(), window_length=315, channels=0)


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
    ],
)
def test_out_of_bounds_values_are_one_line_naming_the_key(item, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, [item], environ={})
    assert message in str(caught.value)
    assert str(caught.value).startswith("--set: ")
    assert "\n" not in str(caught.value)


def test_bootstrap_servers_accept_lists_hostnames_and_bracketed_ipv6():
    servers = "kafka-1.internal:9092, 10.0.0.2:9093,[::1]:9094"
    assert load_config(None, [f'kafka.bootstrap_servers="{servers}"'], environ={})


def test_max_devices_beyond_this_machines_memory_names_the_largest_that_fits(monkeypatch):
    monkeypatch.setattr("stream.config.model_checks._memory_limit_bytes", lambda: 2**30)
    config = load_config(None, ["windows.max_devices=1000000"], environ={})
    with pytest.raises(ConfigError) as caught:
        check_against_model(config, window_length=315, channels=3)
    assert str(caught.value) == (
        "windows.max_devices: 1,000,000 devices x 3,881 bytes each (windows of 315 samples x "
        "3 channels) = 3.6 GiB, more than this machine's 1.0 GiB of memory; set "
        "windows.max_devices to at most 276,666"
    )
    check_against_model(Config(), window_length=315, channels=3)  # 100,000 x 3,881 fits
