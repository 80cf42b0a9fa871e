"""Cross-fitted TimesNet ensembles: K members, each trained with a different 1/K held out.

120 UWave cases are few enough that one network's answer depends a lot on its seed and
on which cases it saw; averaging the probabilities of K networks trained on different
folds removes much of that variance. The same folds give an honest validation figure
on the whole training file: every case is predicted by the one member that never
trained on it (out-of-fold accuracy), with no test data and no checkpoint picking.

Members train for a fixed number of epochs (the cosine schedule's full length) and keep
their last weights, so the out-of-fold figures are not biased by early stopping on the
very cases they score. Normalization and the FFT periods are fitted once on every
training case (unlabelled statistics) because the exported graph has one of each
(see :mod:`timesnet.ensemble_net`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from timesnet.dataset import Dataset
from timesnet.ensemble_net import EnsembleNet, export_ensemble
from timesnet.errors import ModelError
from timesnet.manifest import ModelManifest
from timesnet.network import TimesNetConfig, dominant_frequencies
from timesnet.normalization import Normalization
from timesnet.train import (
    EpochCallback,
    EpochRecord,
    TrainingConfig,
    evaluate_network,
    train_network,
    training_labels,
)
from timesnet.training_stats import dataset_stats

logger = logging.getLogger(__name__)


def stratified_folds(y: npt.NDArray[np.int64], folds: int, seed: int) -> list[npt.NDArray]:
    """Split case indices into `folds` disjoint held-out sets, balanced per class and overall.

    Cases of each class are shuffled with `seed` and dealt round-robin, the dealer carrying
    on from class to class so that fold sizes differ by at most one.
    """
    if folds < 2 or folds > len(y):
        raise ModelError(
            f"cross-fitting needs 2..{len(y)} folds, got {folds}; "
            "choose --val-fraction between 1/N and 0.5"
        )
    rng = np.random.default_rng(seed)
    assigned: list[list[int]] = [[] for _ in range(folds)]
    dealer = 0
    for class_id in np.unique(y):
        for index in rng.permutation(np.flatnonzero(y == class_id)):
            assigned[dealer % folds].append(int(index))
            dealer += 1
    return [np.sort(np.asarray(held_out, dtype=np.int64)) for held_out in assigned]


def folds_for(val_fraction: float) -> int:
    """Number of members so that each holds out `val_fraction` of the cases (0.25 -> 4)."""
    if not 0.0 < val_fraction <= 0.5:
        raise ModelError(
            f"--val-fraction {val_fraction}: cross-fitting needs a fraction in "
            "(0, 0.5] (each member holds out that share); or pass --no-cross-fit"
        )
    return max(2, round(1.0 / val_fraction))


def fit_ensemble_model_dir(
    dataset: Dataset,
    out_dir: str | Path,
    *,
    name: str,
    network_options: dict,
    top_k: int,
    training: TrainingConfig,
    val_fraction: float,
    command: str,
    on_epoch: EpochCallback | None = None,
) -> ModelManifest:
    """Train one member per fold (seed + i), score each on its held-out fold, export them as one."""
    y = training_labels(dataset)  # [N]
    started = time.perf_counter()
    report = on_epoch or (lambda record, total, phase: None)
    normalization = Normalization.fit(dataset.x)
    x = normalization.apply(dataset.x)  # [N, L, C]
    config = TimesNetConfig(
        dataset.window_length,
        dataset.n_channels,
        len(dataset.labels),
        dominant_frequencies(x, top_k),
        **network_options,
    )
    folds = stratified_folds(y, folds_for(val_fraction), training.seed)
    ensemble = EnsembleNet(config, len(folds))
    members = []
    for i, held_out in enumerate(folds):
        seed = training.seed + i
        trained = np.setdiff1d(np.arange(len(dataset)), held_out)
        result = train_network(
            config,
            replace(training, seed=seed),
            x[trained],
            y[trained],
            None,
            _progress(report, training.epochs, f"member {i + 1}/{len(folds)}"),
        )
        accuracy, loss = evaluate_network(result.network, x[held_out], y[held_out])
        logger.info(
            "member=%d seed=%d held_out=%d accuracy=%.4f loss=%.4f",
            i,
            seed,
            held_out.size,
            accuracy,
            loss,
        )
        ensemble.members[i].set_state_dict(result.network.state_dict())
        members.append(
            {
                "seed": seed,
                "held_out": int(held_out.size),
                "accuracy": accuracy,
                "loss": loss,
                "losses": [r.loss for r in result.history],
            }
        )
    info = _training_info(dataset, members, training, val_fraction, command)
    info["seconds"] = round(time.perf_counter() - started, 1)
    ensemble_info = {
        "members": len(folds),
        "seeds": [m["seed"] for m in members],
        "combine": "mean of member softmax probabilities",
        "scheme": "cross-fit: member i trains on every fold but fold i",
    }
    return export_ensemble(
        ensemble,
        out_dir,
        name=name,
        labels=dataset.labels,
        normalization=normalization.to_dict(),
        hyperparameters={
            "network": config.to_dict(),
            "ensemble": ensemble_info,
            "training": {
                **training.to_dict(),
                "top_k": top_k,
                "val_fraction": val_fraction,
                "refit": False,
                "cross_fit": True,
            },
        },
        training=info,
        training_stats=dataset_stats(dataset),
    )


def _progress(report: EpochCallback, epochs: int, phase: str) -> Callable[[EpochRecord], None]:
    """One member's per-epoch callback: `report` with the planned epochs and the member's name."""
    return lambda record: report(record, epochs, phase)


def _training_info(
    dataset: Dataset,
    members: list[dict],
    training: TrainingConfig,
    val_fraction: float,
    command: str,
) -> dict:
    """The manifest's `training` section; validation = pooled out-of-fold figures."""
    cases = sum(m["held_out"] for m in members)
    epochs = len(members[0]["losses"])
    return {
        "data_sha256": dataset.source_sha256,
        "command": command,
        "seed": training.seed,
        "epochs": training.epochs,
        "cases": len(dataset),
        "refit_on_all_training_data": False,
        "epochs_trained": epochs,
        "best_epoch": epochs,  # fixed length, last weights kept: no epoch was picked
        "validation": {
            "fraction": val_fraction,
            "scheme": "out-of-fold: each case scored by the member that did not train on it",
            "accuracy": sum(m["accuracy"] * m["held_out"] for m in members) / cases,
            "loss": sum(m["loss"] * m["held_out"] for m in members) / cases,
            "members": [
                {k: m[k] for k in ("seed", "held_out", "accuracy", "loss")} for m in members
            ],
            "history": [  # mean training loss of the members per epoch
                {"epoch": e + 1, "loss": _mean_loss(members, e)} for e in range(epochs)
            ],
        },
    }


def _mean_loss(members: list[dict], epoch_index: int) -> float:
    """Mean training loss of the members at one epoch, rounded for the manifest."""
    return round(float(np.mean([m["losses"][epoch_index] for m in members])), 5)
