"""Secure clusters: a clear first connection, one line naming what to fix when it fails.

The settings a client gets from `[kafka]` (TLS files, the redacted SASL password)
are built in stream/config/kafka_security.py.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from stream.errors import SensorstreamError

log = logging.getLogger(__name__)


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
