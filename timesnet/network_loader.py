"""The dynamic-graph network of a model directory (TimesNet, TCN or ensemble), for checks.

The exported graph serves predictions; this rebuilds the network it came from, from
the manifest's settings and the weights in ``network.npz``, to compare against the
graph, to inspect, to fine-tune, or to write the model's ONNX form again (`add_onnx`).
"""

from __future__ import annotations

from pathlib import Path

from timesnet.ensemble_net import EnsembleNet, load_ensemble_network
from timesnet.errors import ModelError
from timesnet.export import ARCHITECTURES, build_network, load_weights, set_weights
from timesnet.manifest import NETWORK_FILE, ModelManifest, load_manifest
from timesnet.network import TimesNet
from timesnet.onnx_export import export_onnx
from timesnet.tcn import TCN


def load_network(model_dir: str | Path) -> TimesNet | TCN | EnsembleNet:
    """The dynamic-graph network of a model directory, in eval mode (checks the manifest).

    Only the files it is built from are checked: not model.onnx, which may be rewritten from it.
    """
    manifest = load_manifest(model_dir, check_derived=False)
    if "ensemble" in manifest.hyperparameters:  # K members averaged in one graph
        return load_ensemble_network(model_dir, manifest)
    config_class = ARCHITECTURES[manifest.architecture][1]
    try:
        network = build_network(config_class.from_dict(manifest.hyperparameters["network"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"{model_dir}: hyperparameters.network does not build a "
            f"{manifest.architecture} ({type(exc).__name__}: {exc}); "
            "re-export the model"
        ) from exc
    set_weights(network, load_weights(Path(model_dir) / NETWORK_FILE), Path(model_dir))
    network.eval()
    return network


def add_onnx(model_dir: str | Path) -> ModelManifest:
    """Write (or rewrite) model.onnx of a model directory from its network; version unchanged.

    The network is rebuilt with the network code in force, so a model saved before an
    exact rewrite of it gets the rewritten graph. Returns the manifest as written.
    """
    manifest = load_manifest(model_dir, check_derived=False)  # the ONNX is being replaced
    return export_onnx(load_network(model_dir), model_dir, manifest)
