"""The dynamic-graph network of a model directory (TimesNet, TCN or ensemble), for checks.

The exported graph serves predictions; this rebuilds the network it came from, from
the manifest's settings and the weights in ``network.npz``, to compare against the
graph, to inspect, or to fine-tune.
"""

from __future__ import annotations

from pathlib import Path

from timesnet.ensemble_net import EnsembleNet, load_ensemble_network
from timesnet.errors import ModelError
from timesnet.export import ARCHITECTURES, build_network, load_weights, set_weights
from timesnet.manifest import NETWORK_FILE, load_manifest
from timesnet.network import TimesNet
from timesnet.tcn import TCN


def load_network(model_dir: str | Path) -> TimesNet | TCN | EnsembleNet:
    """The dynamic-graph network of a model directory, in eval mode (checks the manifest)."""
    manifest = load_manifest(model_dir)
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
