"""Training loop for TimesNet on normalized windows, with early stopping on a validation split.

Deterministic on CPU for a given seed: Paddle's generator (weights, dropout) is seeded
once, and every shuffle and augmentation draws from one numpy Generator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import paddle
import paddle.nn.functional as F

from timesnet.augment import AugmentConfig, augment_batch, mixup
from timesnet.dataset import Dataset, split_train_validation
from timesnet.errors import ModelError
from timesnet.export import build_network, export_model
from timesnet.manifest import ModelManifest
from timesnet.network import TimesNet, TimesNetConfig, dominant_frequencies
from timesnet.normalization import Normalization
from timesnet.tcn import TCN, TCNConfig
from timesnet.training_stats import dataset_stats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """Optimizer, schedule and regularization settings of one training run."""

    epochs: int = 80
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    patience: int = 25  # epochs without validation improvement before stopping
    grad_clip_norm: float = 1.0
    cosine_schedule: bool = True  # anneal to min_lr_ratio * learning_rate over `epochs`
    min_lr_ratio: float = 0.02
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ModelError(
                f"epochs={self.epochs} batch_size={self.batch_size} "
                f"patience={self.patience}: each must be >= 1"
            )
        if not 0.0 <= self.label_smoothing < 1.0 or self.learning_rate <= 0:
            raise ModelError(
                f"label_smoothing={self.label_smoothing} must be in [0, 1) and "
                f"learning_rate={self.learning_rate} positive"
            )

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (augmentation nested)."""
        return asdict(self)


class BatchLoss(Protocol):
    """The loss of one training mini-batch, from the network's logits and what it was shown."""

    def __call__(
        self,
        logits: paddle.Tensor,
        windows: npt.NDArray[np.float32],
        targets: npt.NDArray[np.float32],
    ) -> paddle.Tensor:
        """logits [B, K] of normalized, augmented, mixed windows [B, L, C]; targets [B, K]."""
        ...


def label_loss(
    logits: paddle.Tensor, windows: npt.NDArray[np.float32], targets: npt.NDArray[np.float32]
) -> paddle.Tensor:
    """The default BatchLoss: cross entropy against the smoothed, mixed labels [B, K]."""
    return soft_cross_entropy(logits, paddle.to_tensor(targets))


LossFactory = Callable[[Normalization], BatchLoss]  # the run's normalization -> its batch loss


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did: mean training loss, validation figures (None without validation)."""

    epoch: int
    loss: float
    val_accuracy: float | None
    val_loss: float | None
    seconds: float


@dataclass
class TrainingResult:
    """The trained network (best validation epoch restored) and the per-epoch history."""

    network: TimesNet | TCN
    history: list[EpochRecord]
    best_epoch: int
    best_val_accuracy: float | None
    best_val_loss: float | None


def train_network(
    config: TimesNetConfig | TCNConfig,
    training: TrainingConfig,
    x_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[np.int64],
    validation: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    stop_epoch: int | None = None,
    loss: BatchLoss = label_loss,
) -> TrainingResult:
    """Train on x_train [N, L, C] / y_train [N]; early-stop on `validation` when given.

    `stop_epoch` ends training early while keeping the learning-rate schedule of the
    full `training.epochs`, so a refit follows the selection run's trajectory. `loss`
    scores each mini-batch (a distillation loss asks a teacher about its windows).
    """
    paddle.seed(training.seed)
    rng = np.random.default_rng(training.seed)
    network = build_network(config)
    schedule = _cosine_schedule(training) if training.cosine_schedule else None
    optimizer = paddle.optimizer.AdamW(
        learning_rate=training.learning_rate if schedule is None else schedule,
        parameters=network.parameters(),
        weight_decay=training.weight_decay,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(training.grad_clip_norm),
    )
    history: list[EpochRecord] = []
    best: tuple[float, float] | None = None  # (val_accuracy, -val_loss), larger is better
    best_epoch, best_state = stop_epoch or training.epochs, None
    for epoch in range(1, (stop_epoch or training.epochs) + 1):
        started = time.perf_counter()
        mean_loss = _train_epoch(network, optimizer, x_train, y_train, training, rng, loss)
        if schedule is not None:
            schedule.step()
        val_accuracy: float | None = None
        val_loss: float | None = None
        if validation is not None:
            val_accuracy, val_loss = evaluate_network(network, *validation)
        seconds = time.perf_counter() - started
        record = EpochRecord(epoch, mean_loss, val_accuracy, val_loss, seconds)
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if val_accuracy is None or val_loss is None:  # no validation split
            continue
        score = (val_accuracy, -val_loss)
        if best is None or score > best:
            best, best_epoch, best_state = score, epoch, _snapshot(network)
        elif epoch - best_epoch >= training.patience:
            logger.info("early stop epoch=%d best_epoch=%d", epoch, best_epoch)
            break
    if best_state is not None:
        # Paddle's type hints type state dicts as Tensors; set_value takes numpy arrays as well,
        # and converting here would renumber the exported graph's tensor names (its version).
        network.set_state_dict(best_state)  # type: ignore[arg-type]
    network.eval()
    return TrainingResult(
        network,
        history,
        best_epoch,
        None if best is None else best[0],
        None if best is None else -best[1],
    )


def _cosine_schedule(training: TrainingConfig) -> paddle.optimizer.lr.CosineAnnealingDecay:
    """Learning rate annealed to min_lr_ratio * learning_rate over `training.epochs`."""
    return paddle.optimizer.lr.CosineAnnealingDecay(
        training.learning_rate,
        T_max=training.epochs,
        eta_min=training.learning_rate * training.min_lr_ratio,
    )


def _train_epoch(
    network: TimesNet | TCN,
    optimizer: paddle.optimizer.Optimizer,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    training: TrainingConfig,
    rng: np.random.Generator,
    batch_loss: BatchLoss,
) -> float:
    """One pass over shuffled, augmented mini-batches; returns the mean loss."""
    network.train()
    num_classes = network.config.num_classes
    order = rng.permutation(len(x))
    losses = []
    for start in range(0, len(x), training.batch_size):
        index = order[start : start + training.batch_size]
        batch = augment_batch(x[index], rng, training.augment)
        targets = smoothed_targets(y[index], num_classes, training.label_smoothing)
        batch, targets = mixup(batch, targets, rng, training.augment.mixup_alpha)
        logits = network(paddle.to_tensor(batch))
        loss = batch_loss(logits, batch, targets)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    return float(np.mean(losses))


def smoothed_targets(
    y: npt.NDArray[np.int64], num_classes: int, smoothing: float
) -> npt.NDArray[np.float32]:
    """One-hot targets [B, K] with `smoothing` of the mass spread evenly over all classes."""
    targets = np.full((len(y), num_classes), smoothing / num_classes, dtype=np.float32)
    targets[np.arange(len(y)), y] += 1.0 - smoothing
    return targets


def soft_cross_entropy(logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
    """Mean cross entropy of logits [B, K] against soft targets [B, K]."""
    return -(targets * F.log_softmax(logits, axis=-1)).sum(axis=-1).mean()


def predict_logits(
    network: paddle.nn.Layer, x: npt.NDArray[np.float32], batch_size: int = 64
) -> npt.NDArray[np.float32]:
    """Eval-mode logits [N, K] of normalized windows x [N, L, C] in the dynamic graph.

    `network` is any classifier here: TimesNet, TCN or an ensemble (log-probabilities).
    """
    network.eval()
    outputs = []
    with paddle.no_grad():
        for start in range(0, len(x), batch_size):
            outputs.append(network(paddle.to_tensor(x[start : start + batch_size])).numpy())
    return np.concatenate(outputs, axis=0)


def evaluate_network(
    network: paddle.nn.Layer, x: npt.NDArray[np.float32], y: npt.NDArray[np.int64]
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the network on x [N, L, C] / y [N]."""
    logits = predict_logits(network, x)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(y)), y].mean())
    return float((logits.argmax(axis=1) == y).mean()), loss


def _snapshot(network: paddle.nn.Layer) -> dict[str, npt.NDArray]:
    """A detached copy of the network's parameters, to restore the best epoch later."""
    return {name: value.numpy().copy() for name, value in network.state_dict().items()}


EpochCallback = Callable[[EpochRecord, int, str], None]  # (record, planned epochs, phase)


def fit_model_dir(
    dataset: Dataset,
    out_dir: str | Path,
    *,
    name: str,
    network_options: dict,
    top_k: int,
    training: TrainingConfig,
    val_fraction: float,
    refit: bool,
    command: str,
    on_epoch: EpochCallback | None = None,
    architecture: str = "timesnet",
    loss_factory: LossFactory | None = None,
    extra_hyperparameters: dict | None = None,
) -> ModelManifest:
    """Select the epoch count on a stratified validation split, optionally refit on all, export.

    `network_options` are the config fields of `architecture` ("timesnet": TimesNetConfig,
    "tcn": TCNConfig) not read from the data (d_model, ..., dropout). With `refit`, the
    shipped network is retrained on every case of `dataset` for the best validation epoch
    count (same seed), and its normalization and periods are refitted on all of them; the
    validation figures in the manifest are those of the selection run. `loss_factory`
    replaces the label loss of both runs (built on each run's normalization), and
    `extra_hyperparameters` are sections added to the manifest's hyperparameters.
    """
    training_labels(dataset)  # refuse an unlabelled file before any work
    started = time.perf_counter()
    report = on_epoch or (lambda record, total, phase: None)
    selection = None
    if val_fraction > 0:
        train_part, val_part = split_train_validation(dataset, val_fraction, training.seed)
        selection, normalization = _fit_part(
            train_part,
            val_part,
            network_options,
            top_k,
            training,
            lambda record: report(record, training.epochs, "select"),
            architecture=architecture,
            loss_factory=loss_factory,
        )
        final = selection
    if refit or selection is None:
        epochs = selection.best_epoch if selection is not None else training.epochs
        final, normalization = _fit_part(
            dataset,
            None,
            network_options,
            top_k,
            training,
            lambda record: report(record, epochs, "refit"),
            stop_epoch=epochs,
            architecture=architecture,
            loss_factory=loss_factory,
        )
    info = _training_info(dataset, selection, final, training, val_fraction, refit, command)
    info["seconds"] = round(time.perf_counter() - started, 1)
    return export_model(
        final.network,
        out_dir,
        name=name,
        labels=dataset.labels,
        normalization=normalization.to_dict(),
        training_config={
            **training.to_dict(),
            "top_k": top_k,
            "val_fraction": val_fraction,
            "refit": refit,
        },
        training=info,
        training_stats=dataset_stats(dataset),
        extra_hyperparameters=extra_hyperparameters,
    )


def _fit_part(
    train_part: Dataset,
    validation_part: Dataset | None,
    network_options: dict,
    top_k: int,
    training: TrainingConfig,
    on_epoch: Callable[[EpochRecord], None],
    stop_epoch: int | None = None,
    architecture: str = "timesnet",
    loss_factory: LossFactory | None = None,
) -> tuple[TrainingResult, Normalization]:
    """Fit normalization (TimesNet: also periods) on `train_part`, then train with early stop."""
    normalization = Normalization.fit(train_part.x)
    x = normalization.apply(train_part.x)  # [N, L, C]
    shape = (train_part.window_length, train_part.n_channels, len(train_part.labels))
    config: TimesNetConfig | TCNConfig
    if architecture == "tcn":
        config = TCNConfig(*shape, **network_options)
    else:
        config = TimesNetConfig(*shape, dominant_frequencies(x, top_k), **network_options)
    validation = None
    if validation_part is not None:
        validation = (normalization.apply(validation_part.x), training_labels(validation_part))
    y = training_labels(train_part)
    loss = label_loss if loss_factory is None else loss_factory(normalization)
    result = train_network(config, training, x, y, validation, on_epoch, stop_epoch, loss)
    return result, normalization


def training_labels(dataset: Dataset) -> npt.NDArray[np.int64]:
    """The class ids y [N] of a training set; ModelError when its file has no labels."""
    if dataset.y is None:
        raise ModelError("training needs class labels; the data file has none")
    return dataset.y


def _training_info(
    dataset: Dataset,
    selection: TrainingResult | None,
    final: TrainingResult,
    training: TrainingConfig,
    val_fraction: float,
    refit: bool,
    command: str,
) -> dict:
    """The manifest's `training` section: provenance, epochs and validation figures."""
    info: dict = {
        "data_sha256": dataset.source_sha256,
        "command": command,
        "seed": training.seed,
        "epochs": training.epochs,
        "cases": len(dataset),
        "refit_on_all_training_data": refit or selection is None,
        "epochs_trained": len(final.history),
        "best_epoch": final.best_epoch if selection is None else selection.best_epoch,
        "validation": None,
    }
    if selection is not None:
        info["validation"] = {
            "fraction": val_fraction,
            "accuracy": selection.best_val_accuracy,
            "loss": selection.best_val_loss,
            "history": [
                {
                    "epoch": r.epoch,
                    "loss": round(r.loss, 5),
                    "val_accuracy": _rounded(r.val_accuracy),
                    "val_loss": _rounded(r.val_loss),
                }
                for r in selection.history
            ],
        }
    return info


def _rounded(value: float | None) -> float | None:
    """A validation figure rounded for the manifest (None where an epoch had no validation)."""
    return None if value is None else round(value, 5)
