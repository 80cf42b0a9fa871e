"""Paddle's "No ccache found" warning: hidden by the command-line tools, not by the library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _python(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter in the repository (Paddle not yet imported), as a user starts one."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120, env=env
    )


def test_importing_paddle_without_ccache_does_warn_about_it() -> None:
    # Paddle warns only where no ccache is on PATH: leave out the folders that hold one
    path = os.pathsep.join(
        folder
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if not shutil.which("ccache", path=folder)
    )
    assert "No ccache found" in _python("-c", "import paddle", path=path).stderr


def test_importing_the_library_installs_no_warning_filter() -> None:
    code = (
        "import warnings; before = list(warnings.filters); import paddle; "
        "with_paddle = list(warnings.filters); "
        "import timesnet.api, timesnet.crossfit, timesnet.network_loader, timesnet.predictor; "
        "assert warnings.filters == with_paddle, warnings.filters[:3]"
    )
    result = _python("-c", code)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (
            ["-m", "stream.cli", "predict", "--model", "/nonexistent", "--data", "x.ts"],
            "sensorstream predict: error: model directory /nonexistent does not exist",
        ),
        (
            ["-m", "timesnet.migrate", "/nonexistent", "--trust-pickle"],
            "timesnet.migrate: error: /nonexistent/network.pdparams not found",
        ),
    ],
)
def test_a_command_that_imports_paddle_prints_its_error_as_one_line(
    argv: list[str], prefix: str
) -> None:
    result = _python(*argv)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(prefix)
