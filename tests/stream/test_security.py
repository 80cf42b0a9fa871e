"""[kafka] security keys: checked at load, the password read late and never printed."""

from __future__ import annotations

import logging

import pytest

from stream.config import load_config
from stream.errors import ConfigError
from stream.kafka_io import client_settings
from stream.security import REDACTED, RedactedStr, read_password

SASL = [
    'kafka.security_protocol="SASL_SSL"',
    'kafka.sasl_mechanism="SCRAM-SHA-256"',
    'kafka.sasl_username="alice"',
]
SECRET = "hunter2-s3cret"


def test_redacted_str_prints_as_asterisks_everywhere_but_encodes_the_real_characters(
    caplog,
) -> None:
    password = RedactedStr(SECRET)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").debug("configs %s %r %s", {"p": password}, password, password)
    assert SECRET not in caplog.text and REDACTED in caplog.text
    assert SECRET not in f"{password} {password!r} {password:>20} {[password]}"
    assert password.encode("utf-8") == SECRET.encode()
    assert "\0".join(["alice", password]) == f"alice\0{SECRET}"  # what SASL PLAIN sends
    assert password.reveal() == SECRET


def test_sasl_settings_read_the_password_from_the_environment_only_when_asked(monkeypatch) -> None:
    config = load_config(None, [*SASL, 'kafka.sasl_password_env="KAFKA_PW"'], environ={})
    assert SECRET not in repr(config) and SECRET not in str(config.kafka.model_dump())
    monkeypatch.setenv("KAFKA_PW", SECRET)
    settings = client_settings(config.kafka)
    assert settings["security_protocol"] == "SASL_SSL"
    assert settings["sasl_mechanism"] == "SCRAM-SHA-256"
    assert settings["sasl_plain_username"] == "alice"
    assert settings["sasl_plain_password"].reveal() == SECRET
    assert SECRET not in repr(settings)


def test_a_password_file_loses_one_trailing_newline(tmp_path) -> None:
    path = tmp_path / "pw"
    path.write_text(SECRET + "\n")
    assert read_password(None, path).reveal() == SECRET


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "kafka.sasl_password_env: the environment variable KAFKA_PW is not set; export it"),
        ({"KAFKA_PW": ""}, "kafka.sasl_password: the environment variable KAFKA_PW is empty"),
    ],
)
def test_a_missing_or_empty_password_variable_names_the_key(env, message) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        read_password("KAFKA_PW", None, env)


def test_an_unreadable_password_file_names_the_key_and_path(tmp_path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=f"^kafka.sasl_password_file: cannot read {missing}"):
        read_password(None, missing)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (['kafka.sasl_password="x"'], "kafka.sasl_password: the password never goes in the config"),
        (SASL, "kafka.sasl_password_env: set exactly one of sasl_password_env"),
        ([*SASL[:2], 'kafka.sasl_password_env="P"'], "kafka.sasl_username: required with"),
        (['kafka.sasl_username="a"'], "kafka.sasl_username: only used with security_protocol SASL"),
        (['kafka.ssl_cafile="ca.pem"'], "kafka.ssl_cafile: only used with security_protocol SSL"),
        (
            ['kafka.security_protocol="SSL"', 'kafka.ssl_certfile="c.pem"'],
            "kafka.ssl_certfile: a client certificate needs its key",
        ),
        (['kafka.security_protocol="TLS"'], "kafka.security_protocol: expected one of 'PLAINTEXT'"),
    ],
)
def test_inconsistent_security_keys_fail_at_load_with_the_key(overrides, message) -> None:
    with pytest.raises(ConfigError) as failure:
        load_config(None, overrides, environ={})
    assert str(failure.value).startswith(f"--set: {message}")
    assert '"x"' not in str(failure.value)  # a literal password is never echoed back


def test_tls_files_must_exist_when_the_clients_are_built(tmp_path) -> None:
    config = load_config(
        None,
        ['kafka.security_protocol="SSL"', f'kafka.ssl_cafile="{tmp_path / "ca.pem"}"'],
        environ={},
    )
    with pytest.raises(ConfigError, match="^kafka.ssl_cafile: .*ca.pem is not a readable file"):
        client_settings(config.kafka)
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert client_settings(config.kafka)["ssl_cafile"] == str(tmp_path / "ca.pem")


def test_plaintext_clients_get_no_security_settings() -> None:
    settings = client_settings(load_config(None, [], environ={}).kafka)
    assert not any(key.startswith(("sasl_", "ssl_", "security_")) for key in settings)
