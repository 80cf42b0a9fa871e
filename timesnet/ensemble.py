"""Cross-fitted TimesNet ensembles: K members, each trained with a different 1/K held out.

120 UWave cases are few enough that one network's answer depends a lot on its seed and
on which cases it saw; averaging the probabilities of K networks trained on different
folds removes much of that variance. The same folds give an honest validation figure
on the whole training file: every case is predicted by the one member that never
trained on it (out-of-fold accuracy), with no test data and no checkpoint picking.

Members train for a fixed number of epochs (the cosine schedule's full length) and keep
their last weights, so the out-of-fold figures are not biased by early stopping on the
very cases they score. Normalization and the FFT periods are fitted once on every
training case (unlabelled statistics) because the exported graph has one of each.

The exported graph is one Paddle Layer holding the K members; it returns the mean of
their softmax outputs, so the predictor serves it unchanged and, since every member is
batch invariant, so is the ensemble.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import numpy.typing as npt
import paddle
import paddle.nn.functional as F
from paddle import nn

from timesnet.dataset import Dataset
from timesnet.errors import ModelError
from timesnet.export import load_weights, save_graph, save_weights, set_weights
from timesnet.manifest import (
    MANIFEST_FILE,
    MODEL_PREFIX,
    NETWORK_FILE,
    ModelManifest,
    model_version,
    write_manifest,
)
from timesnet.network import TimesNet, TimesNetConfig, dominant_frequencies
from timesnet.normalization import Normalization
from timesnet.train import EpochRecord, TrainingConfig, evaluate_network, train_network

logger = logging.getLogger(__name__)

ARCHITECTURE = "timesnet"  # members are plain TimesNets; the manifest's `ensemble` says how many
MAX_MEMBERS = 100  # bounds what a manifest can make the loader build
PROBABILITY_FLOOR = 1e-30  # keeps log() finite; far below float32 resolution near 1


class EnsembleNet(nn.Layer):
    """K TimesNets sharing one config: x [B, L, C] -> log of their mean probabilities [B, K].

    Returning log-probabilities keeps the `TimesNet` contract (softmax of the output is
    the answer), so `ProbabilityHead` and `predict_logits` work on it unchanged.
    """

    def __init__(self, config: TimesNetConfig, members: int) -> None:
        super().__init__()
        if members < 1:
            raise ModelError(f"an ensemble needs at least one member, got {members}")
        self.config = config
        self.members = nn.LayerList([TimesNet(config) for _ in range(members)])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, L, C] -> log mean member probabilities [B, K]."""
        total = F.softmax(self.members[0](x), axis=-1)
        for member in self.members[1:]:
            total = total + F.softmax(member(x), axis=-1)
        mean = total / len(self.members)  # [B, K]
        return paddle.log(paddle.clip(mean, min=PROBABILITY_FLOOR))


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


EpochCallback = Callable[[EpochRecord, int, str], None]  # (record, planned epochs, phase)


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
    if dataset.y is None:
        raise ModelError("training needs class labels; the data file has none")
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
    folds = stratified_folds(dataset.y, folds_for(val_fraction), training.seed)
    ensemble = EnsembleNet(config, len(folds))
    members = []
    for i, held_out in enumerate(folds):
        seed = training.seed + i
        trained = np.setdiff1d(np.arange(len(dataset)), held_out)
        result = train_network(
            config,
            replace(training, seed=seed),
            x[trained],
            dataset.y[trained],
            None,
            lambda record, i=i: report(record, training.epochs, f"member {i + 1}/{len(folds)}"),
        )
        accuracy, loss = evaluate_network(result.network, x[held_out], dataset.y[held_out])
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
    )


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


def export_ensemble(
    ensemble: EnsembleNet,
    out_dir: str | Path,
    *,
    name: str,
    labels: tuple[str, ...],
    normalization: dict,
    hyperparameters: dict,
    training: dict,
) -> ModelManifest:
    """jit.save the ensemble as one graph (normalized x [B, L, C] -> probabilities [B, K])."""
    config = ensemble.config
    directory = save_graph(ensemble, labels, out_dir)
    # K members' weights twice (graph + dynamic copy) would break the 5 MB budget of a
    # shipped model, so the dynamic copy is a name table into the graph's parameters.
    table = _graph_name_table(ensemble, str(directory / MODEL_PREFIX))
    save_weights(
        {
            "structured_names": np.asarray(list(table)),
            "graph_names": np.asarray(list(table.values())),
        },
        directory / NETWORK_FILE,
    )
    manifest = ModelManifest(
        name=name,
        version=model_version(directory),
        architecture=ARCHITECTURE,
        labels=tuple(labels),
        channels=config.channels,
        window_length=config.window_length,
        normalization=dict(normalization),
        periods=config.periods,
        hyperparameters=hyperparameters,
        training=dict(training),
        test_metrics=None,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    write_manifest(directory, manifest)
    logger.info(
        "exported ensemble dir=%s members=%d version=%s",
        directory,
        len(ensemble.members),
        manifest.version,
    )
    return manifest


def load_ensemble_network(model_dir: str | Path, manifest: ModelManifest) -> EnsembleNet:
    """The dynamic-graph ensemble of a model directory whose manifest has an `ensemble` entry."""
    members = manifest.hyperparameters["ensemble"].get("members")
    if not isinstance(members, int) or not 1 <= members <= MAX_MEMBERS:
        raise ModelError(
            f"{Path(model_dir) / MANIFEST_FILE}: hyperparameters.ensemble.members "
            f"must be an integer in 1..{MAX_MEMBERS}; re-export the model"
        )
    try:
        config = TimesNetConfig.from_dict(manifest.hyperparameters["network"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"{model_dir}: hyperparameters.network does not build a TimesNet "
            f"({type(exc).__name__}: {exc}); re-export the model"
        ) from exc
    ensemble = EnsembleNet(config, members)
    path = Path(model_dir) / NETWORK_FILE
    names = load_weights(path)
    if (
        set(names) != {"structured_names", "graph_names"}
        or any(names[key].dtype.kind != "U" or names[key].ndim != 1 for key in names)
        or len(names["structured_names"]) != len(names["graph_names"])
    ):
        raise ModelError(
            f"{path}: expected the ensemble's name table (structured_names, "
            "graph_names); re-export the model"
        )
    # a PIR graph (model.json) loads without pickle: no model.pdiparams.info is read
    graph = paddle.jit.load(str(Path(model_dir) / MODEL_PREFIX)).state_dict()
    missing = sorted(set(names["graph_names"].tolist()) - set(graph))
    if missing:
        raise ModelError(
            f"{path}: names parameter {missing[0]}, which the graph lacks; re-export the model"
        )
    pairs = zip(names["structured_names"].tolist(), names["graph_names"].tolist(), strict=True)
    set_weights(ensemble, {name: graph[graph_name].numpy() for name, graph_name in pairs}, path)
    ensemble.eval()
    return ensemble


def _graph_name_table(ensemble: EnsembleNet, prefix: str) -> dict[str, str]:
    """Each structured parameter name -> the name of the identical parameter in the saved graph.

    Matched by value, not by order, because the saved graph numbers its parameters in
    its own order; trained weights are distinct, and equal ones are interchangeable.
    """
    graph = {name: value.numpy() for name, value in paddle.jit.load(prefix).state_dict().items()}
    table = {}
    for name, value in ensemble.state_dict().items():
        array = value.numpy()
        table[name] = next(
            (
                graph_name
                for graph_name, candidate in graph.items()
                if candidate.shape == array.shape and np.array_equal(candidate, array)
            ),
            "",
        )
        if not table[name]:
            raise ModelError(
                f"parameter {name} is missing from the saved graph {prefix}; "
                "the export is inconsistent, re-run training"
            )
    return table
