"""Config test fixtures: a config file written into a fresh folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def write_config(tmp_path: Path):
    """Factory: write TOML text to a config file in a fresh folder and return its path."""

    def write(text: str, name: str = "worker.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
