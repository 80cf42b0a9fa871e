"""One house style and honest types: the formatter, the linter and mypy run with the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("stream", "windows", "timesnet")


def _tool(name: str) -> str:
    # the virtualenv's own copy first (scripts/setup.sh --dev installs the dev extra there)
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: run scripts/setup.sh --dev (it installs the dev extra)"
        )
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_every_file_is_ruff_formatted() -> None:
    result = _run(_tool("ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check_finds_nothing() -> None:
    result = _run(_tool("ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_the_product_packages() -> None:
    result = _run(_tool("mypy"), *PRODUCT)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr
