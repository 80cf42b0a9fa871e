"""Training end to end on a UWave subset with a tiny network, plus the augmentation rules.

What the trained models serve is checked in test_predictor_contract.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from stream.cli import main
from timesnet.augment import AugmentConfig, _shift, augment_batch, mixup
from timesnet.manifest import MODEL_FILES, ONNX_FILE, load_manifest, model_version
from timesnet.predictor import load_predictor
from timesnet.train import smoothed_targets


def test_train_exports_a_model_whose_manifest_says_how_it_was_trained(
    tiny_model_dir: Path, subset_ts_file: Path
) -> None:
    manifest = load_manifest(tiny_model_dir)
    assert manifest.architecture == "timesnet"
    assert manifest.labels == tuple(f"{k}.0" for k in range(1, 9))
    assert (manifest.channels, manifest.window_length) == (3, 315)
    assert manifest.training["command"].startswith(
        f"sensorstream train --data {subset_ts_file} --out {tiny_model_dir} --epochs 3 --seed 3"
    )
    assert manifest.training["cases"] == 40
    assert manifest.training["validation"]["fraction"] == 0.25
    assert len(manifest.training["validation"]["history"]) == 3
    assert manifest.version == model_version(tiny_model_dir)


def test_training_is_deterministic_for_a_seed(
    tiny_model_dir: Path, tmp_path: Path, train_tiny: Callable[[Path, list[str]], int]
) -> None:
    assert train_tiny(tmp_path / "again", []) == 0
    x = np.random.default_rng(2).normal(size=(4, 315, 3)).astype(np.float32)
    first = load_predictor(tiny_model_dir).predict_batch(x)
    second = load_predictor(tmp_path / "again").predict_batch(x)
    np.testing.assert_array_equal(first, second)
    assert (
        load_manifest(tiny_model_dir).training["validation"]
        == load_manifest(tmp_path / "again").training["validation"]
    )


def test_predict_writes_one_json_line_per_case(
    tiny_model_dir: Path, subset_ts_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "preds.jsonl"
    assert (
        main(
            [
                "predict",
                "--model",
                str(tiny_model_dir),
                "--data",
                str(subset_ts_file),
                "--batch-size",
                "7",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["index"] for row in rows] == list(range(40))
    for row in rows:
        assert set(row) == {"index", "label", "class_id", "score", "probabilities"}
        assert row["label"] == f"{row['class_id'] + 1}.0"
        assert row["score"] == max(row["probabilities"])
        assert abs(sum(row["probabilities"]) - 1.0) < 1e-5


def test_predict_to_stdout_prints_only_json_lines(
    tiny_model_dir: Path, subset_ts_file: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--model", str(tiny_model_dir), "--data", str(subset_ts_file)]) == 0
    lines = capfd.readouterr().out.splitlines()
    assert len(lines) == 40
    assert all(line.startswith('{"index": ') for line in lines)


def test_evaluate_json_is_the_last_stdout_line_and_report_files_are_written(
    tiny_model_dir: Path, subset_ts_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(tiny_model_dir),
                "--data",
                str(subset_ts_file),
                "--json",
                "--report-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out.splitlines()[-1])
    for key in ("accuracy", "macro_f1", "per_class", "confusion_matrix", "windows_per_s"):
        assert key in metrics
    assert sum(map(sum, metrics["confusion_matrix"])) == 40
    for suffix in (".txt", ".json", ".png"):
        assert (tmp_path / f"uwave_subset{suffix}").stat().st_size > 0


def test_evaluate_record_keeps_the_version_and_stores_test_metrics(
    tiny_model_dir: Path, subset_ts_file: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "model"
    copy.mkdir()
    for name in (*MODEL_FILES, ONNX_FILE, "manifest.json"):  # evaluate serves model.onnx
        (copy / name).write_bytes((tiny_model_dir / name).read_bytes())
    before = load_manifest(copy).version
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(copy),
                "--data",
                str(subset_ts_file),
                "--record",
                "--report-dir",
                str(tmp_path / "reports"),
            ]
        )
        == 0
    )
    after = load_manifest(copy)
    assert after.version == before
    assert after.test_metrics["data"] == "uwave_subset.ts"
    assert 0.0 <= after.test_metrics["accuracy"] <= 1.0


def test_train_rejects_a_file_without_labels_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "unlabelled.ts"
    path.write_text(
        "@problemName x\n@univariate true\n@classLabel false\n@data\n"
        "1,2,3,4,5,6,7,8\n2,3,4,5,6,7,8,9\n"
    )
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sensorstream train: error: training needs class labels; the data file has none"]


def test_augment_batch_is_seeded_keeps_shape_and_leaves_input_alone() -> None:
    x = np.random.default_rng(0).normal(size=(6, 50, 3)).astype(np.float32)
    original = x.copy()
    first = augment_batch(x, np.random.default_rng(7), AugmentConfig())
    second = augment_batch(x, np.random.default_rng(7), AugmentConfig())
    assert first.shape == x.shape and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(x, original)
    assert not np.allclose(first, x)


def test_augment_with_every_transform_off_is_the_identity() -> None:
    x = np.random.default_rng(0).normal(size=(4, 30, 2)).astype(np.float32)
    off = AugmentConfig(scale_std=0, jitter_std=0, max_shift=0, warp_std=0, mixup_alpha=0)
    np.testing.assert_array_equal(augment_batch(x, np.random.default_rng(1), off), x)


@pytest.mark.parametrize(
    ("shift", "expected"),
    [(2, [1, 1, 1, 2, 3]), (-2, [3, 4, 5, 5, 5]), (0, [1, 2, 3, 4, 5])],
)
def test_time_shift_repeats_the_edge_sample_into_the_gap(shift: int, expected: list[int]) -> None:
    window = np.arange(1, 6, dtype=np.float32)[:, None]  # [5, 1]
    np.testing.assert_array_equal(_shift(window, shift)[:, 0], expected)


def test_mixup_blends_inputs_and_targets_with_the_same_weight() -> None:
    rng = np.random.default_rng(0)
    x = np.stack([np.zeros((4, 1)), np.ones((4, 1))]).astype(np.float32)  # [2, 4, 1]
    targets = np.eye(2, dtype=np.float32)
    mixed_x, mixed_targets = mixup(x, targets, rng, alpha=0.4)
    np.testing.assert_allclose(mixed_targets.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(mixed_x[:, 0, 0], mixed_targets[:, 1], atol=1e-6)


def test_smoothed_targets_spread_the_smoothing_mass_over_all_classes() -> None:
    targets = smoothed_targets(np.array([2, 0]), 4, 0.2)
    np.testing.assert_allclose(targets[0], [0.05, 0.05, 0.85, 0.05])
    np.testing.assert_allclose(targets.sum(axis=1), 1.0)
