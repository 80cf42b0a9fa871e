"""Export a trained network (TimesNet or TCN) to a model directory (graph + weights + manifest).

The directory gets the Paddle graph, the dynamic weights and, from them, model.onnx
(timesnet/onnx_export.py), so every runtime can serve what training wrote.

The dynamic-graph weights go to a numpy archive read back with ``allow_pickle=False``:
``paddle.save``/``paddle.load`` pickle, so a planted weight file would run code on load.
"""

from __future__ import annotations

import logging
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import paddle
from paddle.static import InputSpec

from timesnet.errors import ModelError
from timesnet.manifest import (
    ARCHITECTURE_NAMES,
    MODEL_PREFIX,
    NETWORK_FILE,
    ModelManifest,
    model_version,
    write_manifest,
)
from timesnet.network import ProbabilityHead, TimesNet, TimesNetConfig
from timesnet.onnx_export import export_onnx, remove_onnx
from timesnet.tcn import TCN, TCNConfig
from timesnet.training_stats import TrainingStats

logger = logging.getLogger(__name__)

# The manifest's `architecture` names one of these: (network class, its config class).
ARCHITECTURES: dict[str, tuple[type[TimesNet | TCN], type[TimesNetConfig | TCNConfig]]] = {
    "timesnet": (TimesNet, TimesNetConfig),
    "tcn": (TCN, TCNConfig),
}
assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES  # the manifest checks names without Paddle


def build_network(config: TimesNetConfig | TCNConfig) -> TimesNet | TCN:
    """A fresh network of the architecture whose config class `config` is."""
    if isinstance(config, TimesNetConfig):
        return TimesNet(config)
    if isinstance(config, TCNConfig):
        return TCN(config)
    raise ModelError(f"no network for config type {type(config).__name__}")


def architecture_of(network: TimesNet | TCN) -> str:
    """The manifest name of a network's architecture ("timesnet" or "tcn")."""
    return next(name for name, (cls, _) in ARCHITECTURES.items() if isinstance(network, cls))


def save_graph(network: paddle.nn.Layer, labels: tuple[str, ...], out_dir: str | Path) -> Path:
    """jit.save `network` (eval mode) as normalized x [B, L, C] -> probabilities [B, K]."""
    config = network.config
    if len(labels) != config.num_classes:
        raise ModelError(f"{len(labels)} labels for a network with {config.num_classes} classes")
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    network.eval()
    spec = InputSpec([None, config.window_length, config.channels], "float32", "x")
    paddle.jit.save(ProbabilityHead(network), str(directory / MODEL_PREFIX), input_spec=[spec])
    return directory


def export_model(
    network: TimesNet | TCN,
    out_dir: str | Path,
    *,
    name: str,
    labels: tuple[str, ...],
    normalization: dict,
    training_config: dict,
    training: dict,
    training_stats: TrainingStats | None = None,
    extra_hyperparameters: dict | None = None,
) -> ModelManifest:
    """Save `network` (eval mode) under `out_dir` with its manifest; returns the manifest.

    The exported graph, and its ONNX form (model.onnx), take normalized windows
    x [B, L, C] float32 and return probabilities [B, K]; the predictor applies
    `normalization` before calling them. `extra_hyperparameters` are further
    manifest sections (e.g. `distillation`).
    """
    extra = dict(extra_hyperparameters or {})
    if {"network", "training"} & set(extra):
        raise ModelError("extra hyperparameters may not replace `network` or `training`")
    config = network.config
    remove_onnx(out_dir)  # one left from an earlier model here would not match this one
    directory = save_graph(network, labels, out_dir)
    save_weights(
        {name: value.numpy() for name, value in network.state_dict().items()},
        directory / NETWORK_FILE,
    )
    manifest = ModelManifest(
        name=name,
        version=model_version(directory),
        architecture=architecture_of(network),
        labels=tuple(labels),
        channels=config.channels,
        window_length=config.window_length,
        normalization=dict(normalization),
        periods=getattr(config, "periods", None),  # TimesNet only
        hyperparameters={
            "network": config.to_dict(),
            "training": dict(training_config),
            **extra,
        },
        training=dict(training),
        test_metrics=None,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        training_stats=training_stats,
    )
    write_manifest(directory, manifest)  # a complete Paddle model, should the ONNX export fail
    manifest = export_onnx(network, directory, manifest)
    logger.info("exported model dir=%s version=%s", directory, manifest.version)
    return manifest


def save_weights(arrays: dict[str, npt.NDArray], path: str | Path) -> None:
    """Write named arrays as an uncompressed .npz (numeric and string arrays only)."""
    for name, array in arrays.items():
        if array.dtype.hasobject:
            raise ModelError(f"weight {name} has dtype object, which only a pickle can store")
    if "allow_pickle" in arrays:
        raise ModelError("a weight named allow_pickle would be taken for np.savez's own flag")
    # every name is an array now (np.savez's flag is excluded above), as numpy's hints can't say
    named: dict[str, Any] = dict(arrays)
    with open(path, "wb") as handle:  # a handle: np.savez would append ".npz" to a bare name
        np.savez(handle, **named)


def load_weights(path: str | Path) -> dict[str, npt.NDArray]:
    """The named arrays of a .npz, refusing any pickled content; ModelError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelError(
            f"{path}: not a numpy weight archive without pickles ({exc}); re-export the model"
        ) from exc


def set_weights(network: paddle.nn.Layer, arrays: dict[str, npt.NDArray], source: Path) -> None:
    """Load `arrays` into `network`, refusing missing, extra or misshapen weights."""
    expected = {name: tuple(value.shape) for name, value in network.state_dict().items()}
    got = {name: tuple(array.shape) for name, array in arrays.items()}
    if got != expected:
        differing = sorted(
            set(expected).symmetric_difference(got)
            or {n for n in expected if expected[n] != got[n]}
        )
        raise ModelError(
            f"{source}: the weights do not fit the network (first differing: "
            f"{differing[0]}); re-export the model"
        )
    network.set_state_dict({name: paddle.to_tensor(array) for name, array in arrays.items()})
