"""The model manifest: what a model directory holds and how to check it before serving.

A model directory contains the exported inference graph (``model.json`` +
``model.pdiparams``), the dynamic-graph weights (``network.pdparams``, for
round-trip checks and fine-tuning; for an ensemble a table naming, for each
member parameter, the identical one in ``model.pdiparams``, so the weights are
stored once) and ``manifest.json``. The version is a content
hash of the three weight/graph files, so updating ``test_metrics`` in the manifest
does not change the version, while any change to the model does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from timesnet.errors import ModelError

MANIFEST_FILE = "manifest.json"
GRAPH_FILE = "model.json"
PARAMS_FILE = "model.pdiparams"
NETWORK_FILE = "network.pdparams"
MODEL_PREFIX = "model"  # paddle.jit.save path prefix inside the model directory
MODEL_FILES = (GRAPH_FILE, PARAMS_FILE, NETWORK_FILE)


@dataclass(frozen=True)
class ModelManifest:
    """Everything a consumer needs to serve and trust one exported model."""

    name: str
    version: str  # "sha256:<16 hex>" of MODEL_FILES, in that order
    architecture: str
    labels: tuple[str, ...]
    channels: int
    window_length: int
    normalization: dict  # {"mean": [C floats], "std": [C floats]}
    periods: tuple[int, ...] | None
    hyperparameters: dict  # {"network": TimesNetConfig.to_dict(), "training": {...}}
    training: dict  # data_sha256, command, seed, epochs, best_epoch, validation metrics
    test_metrics: dict | None
    created_at: str  # ISO-8601 UTC

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        data = asdict(self)
        data["labels"] = list(self.labels)
        data["periods"] = None if self.periods is None else list(self.periods)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        """Build from `to_dict` output; KeyError/TypeError/ValueError on malformed input."""
        periods = data["periods"]
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            architecture=str(data["architecture"]),
            labels=tuple(str(label) for label in data["labels"]),
            channels=int(data["channels"]),
            window_length=int(data["window_length"]),
            normalization=dict(data["normalization"]),
            periods=None if periods is None else tuple(int(p) for p in periods),
            hyperparameters=dict(data["hyperparameters"]),
            training=dict(data["training"]),
            test_metrics=None if data.get("test_metrics") is None else dict(data["test_metrics"]),
            created_at=str(data["created_at"]),
        )

    def with_test_metrics(self, metrics: dict) -> ModelManifest:
        """A copy with `test_metrics` replaced (the version stays: the model is unchanged)."""
        return replace(self, test_metrics=dict(metrics))


def model_version(model_dir: str | Path) -> str:
    """Content hash "sha256:<16 hex>" of the model files in `model_dir`."""
    digest = hashlib.sha256()
    for file_name in MODEL_FILES:
        digest.update(file_name.encode())
        digest.update((Path(model_dir) / file_name).read_bytes())
    return "sha256:" + digest.hexdigest()[:16]


def write_manifest(model_dir: str | Path, manifest: ModelManifest) -> Path:
    """Write manifest.json (pretty, stable key order) into `model_dir`; returns its path."""
    path = Path(model_dir) / MANIFEST_FILE
    path.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def load_manifest(model_dir: str | Path) -> ModelManifest:
    """Read and check manifest.json and the model files of `model_dir`; ModelError if unfit."""
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} does not exist; pass a directory "
                         "written by `sensorstream train` (e.g. models/uwave)")
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing; the directory must come from `sensorstream train`")
    try:
        manifest = ModelManifest.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path} is not a valid manifest ({type(exc).__name__}: {exc}); "
                         "re-export the model with `sensorstream train`") from exc
    missing = [name for name in MODEL_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelError(f"{directory} lacks {', '.join(missing)}; copy the whole model "
                         "directory or re-export it with `sensorstream train`")
    _check_consistent(manifest, directory)
    return manifest


def _check_consistent(manifest: ModelManifest, directory: Path) -> None:
    """Cross-field checks: hash, label count, normalization size."""
    actual = model_version(directory)
    if actual != manifest.version:
        raise ModelError(f"{directory}: model files hash to {actual} but the manifest says "
                         f"{manifest.version}; the files were changed, re-export the model")
    network = manifest.hyperparameters.get("network", {})
    if network.get("num_classes") != len(manifest.labels):
        raise ModelError(f"{directory / MANIFEST_FILE}: {len(manifest.labels)} labels but the "
                         f"network has {network.get('num_classes')} classes; re-export the model")
    for key in ("mean", "std"):
        values = manifest.normalization.get(key)
        if not isinstance(values, list) or len(values) != manifest.channels:
            raise ModelError(f"{directory / MANIFEST_FILE}: normalization {key} must list "
                             f"{manifest.channels} values (one per channel); re-export the model")
