"""Secure clusters: the SASL password kept out of every log line, and a clear first connection.

The password is never a config value: `[kafka]` names where to read it (an
environment variable or a file), and it is read only when a client is built.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stream.config.secrets import read_secret
from stream.errors import ConfigError, SensorstreamError

log = logging.getLogger(__name__)

REDACTED = "**********"


class RedactedStr(str):
    """A str that prints as asterisks but encodes as itself.

    kafka-python's admin client logs its whole configuration at DEBUG (password
    included); SCRAM and PLAIN only ever `.encode()` or join the value, which
    read the real characters, while repr/str/format (what logging uses) do not.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(REDACTED)

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return format(REDACTED, spec)

    def reveal(self) -> str:
        """The real characters as a plain str (for comparisons in tests)."""
        return str.__str__(self)


def read_password(
    env_name: str | None, path: Path | None, environ: Mapping[str, str] | None = None
) -> RedactedStr:
    """The SASL password from `env_name` or the file at `path` (one trailing newline dropped)."""
    value = read_secret(
        env_name,
        path,
        env_key="kafka.sasl_password_env",
        file_key="kafka.sasl_password_file",
        what="SASL password",
        strip=False,
        environ=environ,
    )
    if value is None:
        raise ConfigError(
            "kafka.sasl_password_env: SASL needs a password; set sasl_password_env "
            "(an environment variable name) or sasl_password_file (a path)"
        )
    return RedactedStr(value)


def check_file(key: str, path: Path) -> str:
    """`path` as a str if it is a readable file, else one line naming the key."""
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(f"kafka.{key}: {path} is not a readable file; fix the path")
    return str(path)


def check_tls_files(kafka: Any) -> dict[str, str]:
    """The TLS file kwargs, each loaded as the client will load it, or one line naming the key."""
    files = {
        key: check_file(key, getattr(kafka, key))
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
        if getattr(kafka, key) is not None
    }
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for key in ("ssl_cafile", "ssl_certfile"):
        if key in files:
            try:
                probe.load_verify_locations(cafile=files[key])
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise ConfigError(
                    f"kafka.{key}: {files[key]} holds no PEM certificate ({_reason(exc)}); "
                    "point it at a PEM file with the certificate"
                ) from None
    if "ssl_certfile" in files:
        try:
            # An empty password: an encrypted key fails here instead of prompting on a tty.
            probe.load_cert_chain(files["ssl_certfile"], files["ssl_keyfile"], password="")
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                f"kafka.ssl_keyfile: {files['ssl_keyfile']} is not the unencrypted PEM private "
                f"key of {files['ssl_certfile']} ({_reason(exc)}); point it at that key"
            ) from None
    return files


def _reason(exc: Exception) -> str:
    """OpenSSL's short reason for a failed load, else the error's text."""
    return str(getattr(exc, "reason", None) or exc)


def client_security_settings(kafka: Any) -> dict[str, Any]:
    """kafka-python client kwargs for a KafkaConfig's TLS and SASL keys ({} for PLAINTEXT)."""
    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return {}
    settings: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        settings["ssl_check_hostname"] = kafka.ssl_check_hostname
        settings.update(check_tls_files(kafka))
    if protocol.startswith("SASL_"):
        settings["sasl_mechanism"] = kafka.sasl_mechanism
        settings["sasl_plain_username"] = kafka.sasl_username
        settings["sasl_plain_password"] = read_password(
            kafka.sasl_password_env, kafka.sasl_password_file
        )
    return settings


def check_security_keys(kafka: Any) -> None:
    """SASL keys only with a SASL protocol (and then all of them), TLS files only with TLS.

    Raises ValueError whose message starts with the key it blames (a config validator).
    """
    sasl = kafka.security_protocol.startswith("SASL_")
    tls = kafka.security_protocol in ("SSL", "SASL_SSL")
    for key in ("sasl_mechanism", "sasl_username", "sasl_password_env", "sasl_password_file"):
        if not sasl and getattr(kafka, key) is not None:
            raise ValueError(
                f"{key}: only used with security_protocol SASL_SSL or SASL_PLAINTEXT "
                f"(got {kafka.security_protocol}); set the protocol or remove the key"
            )
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if not tls and getattr(kafka, key) is not None:
            raise ValueError(
                f"{key}: only used with security_protocol SSL or SASL_SSL "
                f"(got {kafka.security_protocol}); set the protocol or remove the key"
            )
    if (kafka.ssl_certfile is None) != (kafka.ssl_keyfile is None):
        raise ValueError(
            "ssl_certfile: a client certificate needs its key: set both ssl_certfile and "
            "ssl_keyfile, or neither"
        )
    if not sasl:
        return
    for key in ("sasl_mechanism", "sasl_username"):
        if getattr(kafka, key) is None:
            raise ValueError(f"{key}: required with security_protocol {kafka.security_protocol}")
    if (kafka.sasl_password_env is None) == (kafka.sasl_password_file is None):
        raise ValueError(
            "sasl_password_env: set exactly one of sasl_password_env (an environment variable "
            "name) or sasl_password_file (a path); the password itself never goes in the config"
        )


def check_connection(kafka: Any, timeout_s: float = 10.0) -> None:
    """Connect and authenticate once; a failure becomes one line naming what to fix.

    Bounded by `timeout_s`. kafka-python reports a rejected SASL login only as a
    dropped connection and retries until its bootstrap timeout, so the cause is
    found by probing TCP, then TLS with the same CA and hostname check: if both
    work, the login was refused. A PLAINTEXT cluster is left to the first client.
    """
    if kafka.security_protocol == "PLAINTEXT":
        return
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    from stream.kafka.clients import client_settings

    timeout_ms = int(min(timeout_s, kafka.request_timeout_ms / 1000) * 1000)
    settings = client_settings(kafka) | {
        "request_timeout_ms": timeout_ms,
        "bootstrap_timeout_ms": timeout_ms,
    }
    started_s = time.monotonic()
    with _quiet_kafka_logs():
        try:
            admin = KafkaAdminClient(**settings)
            try:
                admin.list_topics()
            finally:
                admin.close()
        except KafkaError as exc:
            raise SensorstreamError(_diagnose(kafka, exc)) from None
    log.info(
        "kafka security ok protocol=%s mechanism=%s user=%s elapsed_s=%.2f",
        kafka.security_protocol,
        kafka.sasl_mechanism,
        kafka.sasl_username,
        time.monotonic() - started_s,
    )


@contextmanager
def _quiet_kafka_logs() -> Iterator[None]:
    """Mute kafka-python's per-retry ERROR lines (the check reports the cause once) unless DEBUG."""
    logger = logging.getLogger("kafka")
    if logger.isEnabledFor(logging.DEBUG):
        yield
        return
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _diagnose(kafka: Any, exc: Exception) -> str:
    """Which step failed (TCP, TLS, SASL login), in words a user can act on; never the password."""
    host, _, port = kafka.bootstrap_servers.split(",")[0].strip().rpartition(":")
    where = f"{kafka.security_protocol} listener {host}:{port}"
    try:
        sock = socket.create_connection((host, int(port)), timeout=5.0)
    except (OSError, ValueError) as err:
        return (
            f"kafka: cannot connect to the {where} ({err.__class__.__name__}); check "
            "kafka.bootstrap_servers and that the broker is running"
        )
    with sock:
        if kafka.security_protocol in ("SSL", "SASL_SSL"):
            tls_error = _tls_handshake_error(kafka, sock, host)
            if tls_error is not None:
                return (
                    f"kafka: TLS handshake with the {where} failed ({tls_error}); check "
                    "kafka.ssl_cafile (the CA that signed the broker's certificate), "
                    "kafka.ssl_check_hostname and the client certificate files"
                )
    if kafka.security_protocol.startswith("SASL_"):
        source = (
            f"${kafka.sasl_password_env}"
            if kafka.sasl_password_env
            else str(kafka.sasl_password_file)
        )
        return (
            f"kafka: the {where} refused the {kafka.sasl_mechanism} login as "
            f"{kafka.sasl_username!r}; check kafka.sasl_username, kafka.sasl_mechanism and "
            f"the password in {source}"
        )
    return f"kafka: the {where} did not answer ({exc.__class__.__name__}: {exc})"


def _tls_handshake_error(kafka: Any, sock: socket.socket, host: str) -> str | None:
    """The TLS failure with the configured CA and hostname check, or None if it succeeds."""
    context = ssl.create_default_context(
        cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile is not None else None
    )
    context.check_hostname = kafka.ssl_check_hostname
    if kafka.ssl_certfile is not None:
        context.load_cert_chain(str(kafka.ssl_certfile), str(kafka.ssl_keyfile))
    try:
        with context.wrap_socket(sock, server_hostname=host):
            return None
    except ssl.SSLCertVerificationError as err:
        return f"certificate verify failed: {err.verify_message}"
    except (ssl.SSLError, OSError) as err:
        return getattr(err, "reason", None) or str(err)
