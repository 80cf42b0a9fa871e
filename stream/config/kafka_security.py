"""The [kafka] TLS and SASL keys as client settings, the password kept out of every log line.

The password is never a config value: `[kafka]` names where to read it (an
environment variable or a file), and it is read only when a client is built; the
TLS files are loaded then too, as the client will load them.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stream.config.secrets import read_secret
from stream.errors import ConfigError

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
