"""The shipped models/uwave: provenance in its manifest, size, and honest test accuracy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from stream.cli import main
from timesnet.dataset import Dataset
from timesnet.manifest import load_manifest, model_version
from timesnet.predictor import Predictor
from timesnet.uwave import UWAVE_TRAIN_FILE

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "uwave"
# Issue 3 asks for >= 0.875 (aim 0.90). The shipped model is a 4-member cross-fitted
# ensemble fixed in advance and checked only by out-of-fold accuracy on the training file;
# the test file was scored once, for the record (0.8969, 287/320).
ACCURACY_FLOOR = 0.875


def test_shipped_model_is_under_five_megabytes() -> None:
    size = sum(path.stat().st_size for path in MODEL_DIR.rglob("*") if path.is_file())
    assert size < 5 * 1024 * 1024


def test_manifest_records_how_the_model_was_trained(uwave_dir: Path) -> None:
    manifest = load_manifest(MODEL_DIR)
    train_file = uwave_dir / UWAVE_TRAIN_FILE
    assert manifest.name == "uwave" and manifest.architecture == "timesnet"
    assert manifest.version == model_version(MODEL_DIR)
    assert manifest.labels == tuple(f"{k}.0" for k in range(1, 9))
    assert (manifest.channels, manifest.window_length) == (3, 315)
    frequencies = manifest.hyperparameters["network"]["frequencies"]
    assert manifest.periods == tuple(315 // f for f in frequencies)
    assert manifest.training["data_sha256"] == hashlib.sha256(train_file.read_bytes()).hexdigest()
    assert manifest.training["command"].startswith(
        "sensorstream train --data ../shared/data/uwave/UWaveGestureLibrary_TRAIN.ts "
        "--out models/uwave"
    )
    assert manifest.training["validation"]["accuracy"] > 0.5
    ensemble = manifest.hyperparameters["ensemble"]
    assert ensemble["members"] == len(ensemble["seeds"]) == 4


def test_recorded_test_metrics_come_from_the_test_file(uwave_test_file: Path) -> None:
    metrics = load_manifest(MODEL_DIR).test_metrics
    test_file = uwave_test_file
    assert metrics["data_sha256"] == hashlib.sha256(test_file.read_bytes()).hexdigest()
    assert metrics["n"] == 320
    assert metrics["accuracy"] >= ACCURACY_FLOOR


def test_shipped_model_keeps_its_accuracy_on_the_full_test_set(
    shipped_predictor: Predictor, uwave_test_set: Dataset
) -> None:
    assert uwave_test_set.labels == shipped_predictor.manifest.labels
    probabilities = shipped_predictor.predict_batch(uwave_test_set.x)  # [320, 8]
    accuracy = float((probabilities.argmax(axis=1) == uwave_test_set.y).mean())
    assert accuracy >= ACCURACY_FLOOR
    recorded = load_manifest(MODEL_DIR).test_metrics["accuracy"]
    assert accuracy == pytest.approx(recorded, abs=1e-9)


def test_evaluate_json_reports_the_shipped_accuracy(
    uwave_test_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(MODEL_DIR),
                "--data",
                str(uwave_test_file),
                "--json",
                "--report-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert metrics["accuracy"] >= ACCURACY_FLOOR
    assert np.asarray(metrics["confusion_matrix"]).sum() == 320
    assert metrics["windows_per_s"] > 0
