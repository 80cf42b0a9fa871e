"""Loading the config: file, environment, --set, their precedence, paths, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.config.loading import load_config
from stream.config.schema import Config
from stream.errors import ConfigError, SensorstreamError

REPO_ROOT = Path(__file__).resolve().parents[3]


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
