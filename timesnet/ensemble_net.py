"""A cross-fitted TimesNet ensemble as one network: K members whose probabilities are averaged.

The exported graph is one Paddle Layer holding the K members; it returns the mean of
their softmax outputs, so the predictor serves it unchanged and, since every member is
batch invariant, so is the ensemble. How the members are trained is in
:mod:`timesnet.crossfit`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

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
from timesnet.network import TimesNet, TimesNetConfig
from timesnet.onnx_export import export_onnx, remove_onnx
from timesnet.training_stats import TrainingStats

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
        first, *rest = self.members  # [1:] works, but Paddle types LayerList indices as int
        total = F.softmax(first(x), axis=-1)
        for member in rest:
            total = total + F.softmax(member(x), axis=-1)
        mean = total / len(self.members)  # [B, K]
        return paddle.log(paddle.clip(mean, min=PROBABILITY_FLOOR))


def export_ensemble(
    ensemble: EnsembleNet,
    out_dir: str | Path,
    *,
    name: str,
    labels: tuple[str, ...],
    normalization: dict,
    hyperparameters: dict,
    training: dict,
    training_stats: TrainingStats | None = None,
) -> ModelManifest:
    """jit.save the ensemble as one graph (normalized x [B, L, C] -> probabilities [B, K]).

    model.onnx, its ONNX form, reads its weights from that graph's model.pdiparams too.
    """
    config = ensemble.config
    remove_onnx(out_dir)  # one left from an earlier model here would not match this one
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
        training_stats=training_stats,
    )
    write_manifest(directory, manifest)  # a complete Paddle model, should the ONNX export fail
    manifest = export_onnx(ensemble, directory, manifest)
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
