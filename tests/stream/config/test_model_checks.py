"""The config against the loaded model: window, channels, memory, alert and abstain labels."""

from __future__ import annotations

import pytest

from stream.config.loading import load_config
from stream.config.model_checks import (
    check_abstain_label,
    check_against_model,
    check_rules_against_labels,
)
from stream.config.schema import AlertRule, Config, ModelConfig
from stream.errors import ConfigError

LABELS = ("1.0", "2.0", "3.0")


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


def rule(**fields: object) -> AlertRule:
    return AlertRule(**{"name": "r", "label": "1.0", **fields})


def test_unknown_label_names_the_rule_the_label_and_the_models_labels() -> None:
    rules = [rule(name="ok"), rule(name="bad", label="9.0")]
    with pytest.raises(ConfigError) as caught:
        check_rules_against_labels(rules, LABELS)
    message = str(caught.value)
    assert message.startswith("alerts[1].label: unknown label '9.0'")
    assert "'1.0', '2.0', '3.0'" in message
    assert "\n" not in message


def test_duplicate_rule_names_are_rejected() -> None:
    expected = r"alerts\[2\]\.name: 'x' is already the name of alerts\[0\]"
    with pytest.raises(ConfigError, match=expected):
        check_rules_against_labels([rule(name="x"), rule(name="y"), rule(name="x")], LABELS)


def test_known_labels_pass() -> None:
    check_rules_against_labels([rule(), rule(name="two", label="3.0")], LABELS)


def test_an_abstain_label_that_is_a_model_label_is_one_line_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        check_abstain_label(ModelConfig(abstain_label="2.0"), LABELS)
    message = str(caught.value)
    assert message.startswith("model.abstain_label: '2.0' is one of the model's labels")
    assert "\n" not in message
    check_abstain_label(ModelConfig(), LABELS)  # "unknown"
