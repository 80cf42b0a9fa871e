"""Knowledge distillation: train one TimesNet to copy a teacher model directory's probabilities.

The teacher is any exported model (in practice the cross-fitted ensemble, K networks whose
inference costs K times one). The student is trained by :func:`timesnet.train.fit_model_dir`
exactly as `sensorstream train` trains a single TimesNet (same validation split, early
stopping, refit, export, statistics), except for the loss of each mini-batch: after the
batch is augmented and mixed, the teacher scores those very windows, so the soft labels
come from the training file and its augmentations only.

Loss: ``(1 - hard_weight) * T^2 * KL(teacher_T || student_T) + hard_weight * CE(labels)``,
where ``teacher_T`` is the teacher's distribution at temperature T (``p^(1/T)``
renormalized, the same as dividing its logits by T) and the label term is the label
loss `sensorstream train` uses. T^2 keeps the KL gradient's scale independent of T
(Hinton et al., 2015).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import paddle
import paddle.nn.functional as F

from timesnet.batch_predictor import BatchPredictor
from timesnet.dataset import Dataset
from timesnet.errors import ModelError
from timesnet.manifest import MANIFEST_FILE, ModelManifest
from timesnet.normalization import Normalization
from timesnet.train import (
    BatchLoss,
    EpochCallback,
    TrainingConfig,
    fit_model_dir,
    soft_cross_entropy,
)

logger = logging.getLogger(__name__)

PROBABILITY_FLOOR = 1e-12  # keeps log() finite for classes the teacher rules out


@dataclass(frozen=True)
class DistillConfig:
    """How the teacher's probabilities become the student's training targets."""

    temperature: float = 2.0  # T: > 1 flattens the teacher, < 1 sharpens it
    hard_weight: float = 0.0  # weight of the label loss; 1 - this goes to the KL term

    def __post_init__(self) -> None:
        if not 0.0 < self.temperature <= 100.0 or not 0.0 <= self.hard_weight <= 1.0:
            raise ModelError(
                f"temperature={self.temperature} must be in (0, 100] and "
                f"hard_weight={self.hard_weight} in [0, 1]"
            )

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return asdict(self)


def tempered(probs: npt.NDArray[np.float32], temperature: float) -> npt.NDArray[np.float32]:
    """Probabilities [..., K] at temperature T: p^(1/T) renormalized (= softmax(logits / T))."""
    logs = np.log(np.clip(probs, PROBABILITY_FLOOR, 1.0)) / temperature
    logs -= logs.max(axis=-1, keepdims=True)
    out = np.exp(logs)
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.float32)


def distillation_loss(
    logits: paddle.Tensor,
    teacher_probs: npt.NDArray[np.float32],
    label_targets: npt.NDArray[np.float32],
    config: DistillConfig,
) -> paddle.Tensor:
    """(1 - w) T^2 KL(teacher_T || softmax(logits / T)) + w CE(labels), batch means.

    logits [B, K]; teacher_probs [B, K] at temperature 1; label_targets [B, K] the
    smoothed, mixed labels.
    """
    temperature, weight = config.temperature, config.hard_weight
    loss = paddle.zeros([])
    if weight < 1.0:
        teacher = tempered(teacher_probs, temperature)  # [B, K]
        student_log = F.log_softmax(logits / temperature, axis=-1)
        teacher_log = np.log(np.clip(teacher, PROBABILITY_FLOOR, 1.0))
        kl = (paddle.to_tensor(teacher) * (paddle.to_tensor(teacher_log) - student_log)).sum(-1)
        loss = loss + (1.0 - weight) * temperature**2 * kl.mean()
    if weight > 0.0:
        loss = loss + weight * soft_cross_entropy(logits, paddle.to_tensor(label_targets))
    return loss


@dataclass(frozen=True)
class TeacherLoss:
    """The BatchLoss of a distillation run: asks the teacher about each normalized batch.

    The student's windows are normalized with the student's own statistics; they are
    mapped back to raw samples so the teacher applies its own normalization, as it
    does when it serves.
    """

    teacher: BatchPredictor
    normalization: Normalization  # the student's
    config: DistillConfig

    def __call__(
        self,
        logits: paddle.Tensor,
        windows: npt.NDArray[np.float32],
        targets: npt.NDArray[np.float32],
    ) -> paddle.Tensor:
        """logits [B, K] of normalized windows [B, L, C]; targets [B, K] the label targets."""
        raw = windows * self.normalization.std + self.normalization.mean  # [B, L, C]
        teacher_probs = self.teacher.predict_batch(raw.astype(np.float32))  # [B, K]
        return distillation_loss(logits, teacher_probs, targets, self.config)


def teacher_block(teacher_dir: str | Path, manifest: ModelManifest) -> dict:
    """Who taught: the teacher's name, version and manifest sha256, for the student's manifest."""
    manifest_bytes = (Path(teacher_dir) / MANIFEST_FILE).read_bytes()
    ensemble = manifest.hyperparameters.get("ensemble")
    return {
        "name": manifest.name,
        "version": manifest.version,
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "architecture": manifest.architecture,
        "members": ensemble.get("members", 1) if isinstance(ensemble, dict) else 1,
        "data_sha256": manifest.training.get("data_sha256"),
    }


def check_teacher(teacher: ModelManifest, dataset: Dataset) -> None:
    """Refuse a teacher whose classes or window shape differ from the training file's."""
    if dataset.y is None:
        raise ModelError("distillation needs class labels for validation; the file has none")
    shape = (dataset.window_length, dataset.n_channels)
    if tuple(teacher.labels) != tuple(dataset.labels) or shape != (
        teacher.window_length,
        teacher.channels,
    ):
        raise ModelError(
            f"the teacher {teacher.name} classifies {teacher.window_length} x "
            f"{teacher.channels} windows into {list(teacher.labels)}, the data has "
            f"{shape[0]} x {shape[1]} and {list(dataset.labels)}; pass the teacher's "
            "own kind of training file"
        )


def fit_distilled_model_dir(
    teacher: BatchPredictor,
    teacher_dir: str | Path,
    dataset: Dataset,
    out_dir: str | Path,
    *,
    name: str,
    network_options: dict,
    top_k: int,
    training: TrainingConfig,
    distill: DistillConfig,
    val_fraction: float,
    refit: bool,
    command: str,
    on_epoch: EpochCallback | None = None,
) -> ModelManifest:
    """Distil `teacher` into a TimesNet trained on `dataset`; export it to `out_dir`.

    Selection, refit and export are those of `fit_model_dir`; the manifest gains a
    `distillation` section naming the teacher and the loss settings.
    """
    check_teacher(teacher.manifest, dataset)
    block = {
        **distill.to_dict(),
        "teacher": teacher_block(teacher_dir, teacher.manifest),
        "soft_labels": "the teacher's probabilities on each augmented, mixed training batch",
    }
    logger.info(
        "distilling teacher=%s version=%s temperature=%s hard_weight=%s",
        teacher.manifest.name,
        teacher.manifest.version,
        distill.temperature,
        distill.hard_weight,
    )
    return fit_model_dir(
        dataset,
        out_dir,
        name=name,
        network_options=network_options,
        top_k=top_k,
        training=training,
        val_fraction=val_fraction,
        refit=refit,
        command=command,
        on_epoch=on_epoch,
        loss_factory=lambda normalization: _teacher_loss(teacher, normalization, distill),
        extra_hyperparameters={"distillation": block},
    )


def _teacher_loss(
    teacher: BatchPredictor, normalization: Normalization, distill: DistillConfig
) -> BatchLoss:
    """The batch loss of one run (selection or refit), on that run's normalization."""
    return TeacherLoss(teacher, normalization, distill)
