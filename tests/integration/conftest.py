"""Session-wide real parts for worker tests: the shipped predictor and UWave streams."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.integration.workers import REPO, SHIPPED_MODEL
from timesnet.uwave import UWAVE_TEST_FILE


@pytest.fixture(scope="session")
def shipped_predictor() -> object:
    """The shipped model, loaded once (the worker uses it from one thread at a time)."""
    from timesnet.predictor import load_predictor

    return load_predictor(SHIPPED_MODEL, device="cpu", threads=2)


@pytest.fixture(scope="session")
def uwave_test(uwave_dir: Path) -> object:
    """The UWave test split."""
    from timesnet.ts_format import read_ts

    return read_ts(uwave_dir / UWAVE_TEST_FILE)


@pytest.fixture(scope="session")
def cli_predictions(uwave_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """`sensorstream predict` on the UWave test split: probabilities [320, K] by case index."""
    out = tmp_path_factory.mktemp("predict") / "preds.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "predict",
            "--model",
            str(SHIPPED_MODEL),
            "--data",
            str(uwave_dir / UWAVE_TEST_FILE),
            "--out",
            str(out),
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    rows = [json.loads(line) for line in Path(out).read_text().splitlines()]
    rows.sort(key=lambda row: row["index"])
    return np.array([row["probabilities"] for row in rows], dtype=np.float64)
