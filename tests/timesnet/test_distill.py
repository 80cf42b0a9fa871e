"""`sensorstream distill`: a tiny student of the shipped ensemble, its manifest, loss and errors.

What the student serves (shapes, batch invariance over the UWave test set, export round
trip) is checked with every other model in test_predictor_contract.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from stream.cli import main
from tests.timesnet.conftest import SHIPPED_MODEL_DIR as SHIPPED_ENSEMBLE_DIR  # the ensemble
from timesnet.distill import DistillConfig, TeacherLoss, distillation_loss, tempered
from timesnet.errors import ModelError
from timesnet.manifest import MANIFEST_FILE, load_manifest
from timesnet.network import TimesNet
from timesnet.network_loader import load_network
from timesnet.normalization import Normalization
from timesnet.predictor import load_predictor
from timesnet.readers import read_dataset
from timesnet.train import soft_cross_entropy


def test_student_manifest_names_its_teacher_and_how_it_was_trained(
    tiny_distilled_dir: Path, subset_ts_file: Path
) -> None:
    manifest = load_manifest(tiny_distilled_dir)
    teacher = load_manifest(SHIPPED_ENSEMBLE_DIR)
    block = manifest.hyperparameters["distillation"]
    assert block["teacher"]["version"] == teacher.version
    teacher_bytes = (SHIPPED_ENSEMBLE_DIR / MANIFEST_FILE).read_bytes()
    assert block["teacher"]["manifest_sha256"] == hashlib.sha256(teacher_bytes).hexdigest()
    assert block["teacher"]["members"] == 4
    assert (block["temperature"], block["hard_weight"]) == (2.0, 0.25)
    assert manifest.training["command"].startswith(
        f"sensorstream distill --teacher {SHIPPED_ENSEMBLE_DIR} --data {subset_ts_file}"
    )
    assert manifest.training["cases"] == 40
    assert len(manifest.training["validation"]["history"]) == 2
    assert manifest.training_stats is not None and manifest.training_stats.cases == 40
    assert manifest.labels == teacher.labels
    assert "ensemble" not in manifest.hyperparameters  # one network, served as one


def test_student_loads_as_one_small_timesnet_and_is_batch_invariant(
    tiny_distilled_dir: Path, subset_ts_file: Path
) -> None:
    network = load_network(tiny_distilled_dir)
    assert isinstance(network, TimesNet)
    assert (network.config.d_model, network.config.num_kernels) == (8, 1)
    x = read_dataset(subset_ts_file, 315).x[:12]  # [12, 315, 3]
    predictor = load_predictor(tiny_distilled_dir)
    try:
        batch = predictor.predict_batch(x)
        alone = np.concatenate([predictor.predict_batch(window[None]) for window in x])
    finally:
        predictor.close()
    assert np.abs(batch - alone).max() <= 1e-5


def test_tempered_equals_softmax_of_logits_over_temperature() -> None:
    logits = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    probs = F.softmax(paddle.to_tensor(logits), axis=-1).numpy()
    expected = F.softmax(paddle.to_tensor(logits / 3.0), axis=-1).numpy()
    np.testing.assert_allclose(tempered(probs, 3.0), expected, atol=1e-6)


def test_loss_is_the_label_loss_at_hard_weight_one_and_zero_on_a_perfect_copy() -> None:
    logits = paddle.to_tensor(np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32))
    targets = np.full((4, 8), 1 / 8, dtype=np.float32)
    teacher = np.random.default_rng(2).dirichlet(np.ones(8), size=4).astype(np.float32)
    hard = distillation_loss(logits, teacher, targets, DistillConfig(2.0, 1.0))
    assert float(hard) == pytest.approx(
        float(soft_cross_entropy(logits, paddle.to_tensor(targets)))
    )
    copy = F.softmax(logits, axis=-1).numpy()
    for temperature in (1.0, 2.0, 4.0):
        loss = distillation_loss(logits, copy, targets, DistillConfig(temperature, 0.0))
        assert abs(float(loss)) < 1e-5


class _RecordingTeacher:
    """A teacher that answers uniformly and remembers the raw windows it was shown."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict_batch(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(x)
        return np.full((len(x), 8), 1 / 8, dtype=np.float32)


def test_teacher_sees_raw_windows_the_student_saw_normalized() -> None:
    raw = np.random.default_rng(3).normal(2.0, 5.0, size=(3, 315, 3)).astype(np.float32)
    normalization = Normalization.fit(raw)
    teacher = _RecordingTeacher()
    loss = TeacherLoss(teacher, normalization, DistillConfig())  # type: ignore[arg-type]
    loss(paddle.zeros([3, 8]), normalization.apply(raw), np.full((3, 8), 1 / 8, np.float32))
    np.testing.assert_allclose(teacher.seen[0], raw, atol=1e-4)


def test_distill_config_refuses_impossible_settings() -> None:
    with pytest.raises(ModelError, match="temperature=0.0"):
        DistillConfig(0.0, 0.0)
    with pytest.raises(ModelError, match="hard_weight=2"):
        DistillConfig(1.0, 2)


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("teacher", "--teacher {path}: no such model directory"),
        ("data", "--data {path}: no such file"),
        ("empty_teacher", "manifest"),
    ],
)
def test_bad_paths_are_one_error_line_and_exit_2(
    what: str,
    expected: str,
    subset_ts_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    teacher, data = SHIPPED_ENSEMBLE_DIR, subset_ts_file
    path = tmp_path / "missing"
    if what == "teacher":
        teacher = path
    elif what == "data":
        data = path
    else:
        teacher = tmp_path
    argv = ["distill", "--teacher", str(teacher), "--data", str(data), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sensorstream distill: error: ")
    assert expected.format(path=path) in err[0]
    assert not (tmp_path / "o").exists()
