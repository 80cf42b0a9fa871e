"""HTTP test fixtures: the shipped model's predictor."""

from __future__ import annotations

from pathlib import Path

import pytest

from timesnet.predictor import Predictor, load_predictor

MODEL_DIR = Path(__file__).resolve().parents[3] / "models" / "uwave"


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """The shipped model's predictor."""
    return load_predictor(MODEL_DIR)
