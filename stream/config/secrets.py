"""Reading a secret (SASL password, bearer token) from an environment variable or a file.

One place for both, so every secret is read, checked and reported the same way:
the messages name the config key and never the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from stream.errors import ConfigError


def read_secret(
    env_name: str | None,
    path: Path | None,
    *,
    env_key: str,
    file_key: str,
    what: str,
    strip: bool,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The secret from `env_name` or the file at `path`; None when neither is set.

    `strip` drops surrounding whitespace (tokens); otherwise only one trailing
    newline goes (a password may begin or end with spaces).
    """
    env = os.environ if environ is None else environ
    if env_name is not None:
        value = env.get(env_name)
        if value is None:
            raise ConfigError(
                f"{env_key}: the environment variable {env_name} is not set; "
                f"export it with the {what}"
            )
        where = f"the environment variable {env_name}"
    elif path is not None:
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{file_key}: cannot read {path} ({exc.__class__.__name__}); "
                f"point it at a readable file that holds the {what}"
            ) from None
        if not strip:
            value = value.removesuffix("\n").removesuffix("\r")
        where = f"the file {path}"
    else:
        return None
    if strip:
        value = value.strip()
    if not value:
        key = env_key.rsplit("_", 1)[0]  # http.token_env -> http.token
        raise ConfigError(f"{key}: {where} is empty; put the {what} there")
    return value
