"""[kafka] security keys: checked at load, the password read late and never printed."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from stream.config.kafka_security import REDACTED, RedactedStr, read_password
from stream.config.loading import load_config
from stream.errors import ConfigError
from stream.kafka.clients import client_settings

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
    make_cert(tmp_path, "ca")
    assert client_settings(config.kafka)["ssl_cafile"] == str(tmp_path / "ca.pem")


def make_cert(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed EC certificate name.pem and its unencrypted key name.key in folder."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.pem",
            "-subj",
            f"/CN={name}",
            "-days",
            "1",
        ],
        cwd=folder,
        capture_output=True,
        check=True,
    )
    return folder / f"{name}.pem", folder / f"{name}.key"


def tls_config(**files: Path):
    """A [kafka] section on SSL with the given ssl_* files."""
    overrides = ['kafka.security_protocol="SSL"']
    overrides += [f'kafka.ssl_{key}="{path}"' for key, path in files.items()]
    return load_config(None, overrides, environ={}).kafka


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("cafile_garbage", r"^kafka.ssl_cafile: .*garbage.pem holds no PEM certificate"),
        ("cafile_dir", r"^kafka.ssl_cafile: .* is not a readable file"),
        ("certfile_garbage", r"^kafka.ssl_certfile: .*garbage.pem holds no PEM certificate"),
        ("keyfile_garbage", r"^kafka.ssl_keyfile: .*garbage.pem is not the unencrypted PEM"),
        ("keyfile_other", r"^kafka.ssl_keyfile: .*other.key is not the unencrypted PEM private"),
    ],
)
def test_an_unusable_tls_file_is_one_line_naming_its_key(tmp_path, broken, message) -> None:
    cert, key = make_cert(tmp_path, "client")
    _, other_key = make_cert(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    files = {"cafile": cert, "certfile": cert, "keyfile": key}
    key_name, _, kind = broken.partition("_")
    files[key_name] = {"garbage": garbage, "dir": tmp_path, "other": other_key}[kind]
    with pytest.raises(ConfigError, match=message) as failure:
        client_settings(tls_config(**files))
    assert "\n" not in str(failure.value)


def test_usable_tls_files_pass_through_as_paths(tmp_path) -> None:
    cert, key = make_cert(tmp_path, "client")
    settings = client_settings(tls_config(cafile=cert, certfile=cert, keyfile=key))
    assert settings["ssl_certfile"] == str(cert) and settings["ssl_keyfile"] == str(key)


def test_plaintext_clients_get_no_security_settings() -> None:
    settings = client_settings(load_config(None, [], environ={}).kafka)
    assert not any(key.startswith(("sasl_", "ssl_", "security_")) for key in settings)
