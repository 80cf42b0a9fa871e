"""The model manifest: what a model directory holds and how to check it before serving.

A model directory contains the exported inference graph (``model.json`` +
``model.pdiparams``), the dynamic-graph weights (``network.npz``, for
round-trip checks and fine-tuning; for an ensemble a table naming, for each
member parameter, the identical one in ``model.pdiparams``, so the weights are
stored once) and ``manifest.json``. The version is a content
hash of the three weight/graph files, so updating ``test_metrics`` or
``training_stats`` (timesnet/training_stats.py) in the manifest does not change
the version, while any change to the model does. ``model.onnx`` (optional) is the
same model for ONNX Runtime and OpenVINO, written from the others
(timesnet/onnx_export.py): the manifest lists and checks it, the version does not
hash it, so adding it to a model keeps the model's version.

Nothing here or on the serving path unpickles: the graph is JSON, the parameters
Paddle's tensor format, the dynamic weights a numpy archive read with
``allow_pickle=False``. The manifest lists the sha256 of every model file and
`load_manifest` refuses a directory whose files differ, naming the file; every
manifest field is checked against its type and bounds, so a bad manifest is one line.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from timesnet.errors import ModelError
from timesnet.training_stats import TrainingStats

MANIFEST_FILE = "manifest.json"
GRAPH_FILE = "model.json"
PARAMS_FILE = "model.pdiparams"
NETWORK_FILE = "network.npz"
LEGACY_NETWORK_FILE = "network.pdparams"  # a pickle: read only by timesnet.migrate, on request
MODEL_PREFIX = "model"  # paddle.jit.save path prefix inside the model directory
ONNX_FILE = "model.onnx"
MODEL_FILES = (GRAPH_FILE, PARAMS_FILE, NETWORK_FILE)
# the same model in another format, written from MODEL_FILES: checked when listed, not hashed
# into the version (timesnet/onnx_export.py)
DERIVED_FILES = (ONNX_FILE,)
ARCHITECTURE_NAMES = ("timesnet", "tcn")  # timesnet.export.ARCHITECTURES builds each
MAX_CHANNELS = 1024
MAX_WINDOW_LENGTH = 100_000
MAX_LABELS = 10_000
_VERSION = re.compile(r"sha256:[0-9a-f]{16}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    # MODEL_FILES (and DERIVED_FILES present) name -> sha256 hex
    files: dict[str, str] = field(default_factory=dict)
    # what the training data looked like (drift checks); None for models trained before
    training_stats: TrainingStats | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        data = asdict(self)
        data["labels"] = list(self.labels)
        data["periods"] = None if self.periods is None else list(self.periods)
        stats = self.training_stats
        data["training_stats"] = None if stats is None else stats.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        """Build from `to_dict` output; ManifestFieldError names the first field out of bounds."""
        if not isinstance(data, dict):
            raise ManifestFieldError("the manifest must be a JSON object")
        labels = _labels(_get(data, "labels"))
        channels = _bounded_int(data, "channels", 1, MAX_CHANNELS)
        window_length = _bounded_int(data, "window_length", 1, MAX_WINDOW_LENGTH)
        periods = _get(data, "periods")
        return cls(
            name=_text(data, "name"),
            version=_matching(data, "version", _VERSION, "sha256:<16 hex digits>"),
            architecture=_choice(data, "architecture", ARCHITECTURE_NAMES),
            labels=labels,
            channels=channels,
            window_length=window_length,
            normalization=_normalization(_get(data, "normalization"), channels),
            periods=None if periods is None else _periods(periods, window_length),
            hyperparameters=_hyperparameters(data, len(labels), channels, window_length),
            training=_object(data, "training"),
            test_metrics=None
            if data.get("test_metrics") is None
            else _object(data, "test_metrics"),
            created_at=_text(data, "created_at"),
            files=_files(_get(data, "files")),
            training_stats=_training_stats(data.get("training_stats"), channels, len(labels)),
        )

    def with_test_metrics(self, metrics: dict) -> ModelManifest:
        """A copy with `test_metrics` replaced (the version stays: the model is unchanged)."""
        return replace(self, test_metrics=dict(metrics))

    def with_training_stats(self, stats: TrainingStats) -> ModelManifest:
        """A copy with `training_stats` replaced (the version stays: the model is unchanged)."""
        return replace(self, training_stats=stats)


def model_version(model_dir: str | Path) -> str:
    """Content hash "sha256:<16 hex>" of the model files in `model_dir`."""
    digest = hashlib.sha256()
    for file_name in MODEL_FILES:
        digest.update(file_name.encode())
        digest.update((Path(model_dir) / file_name).read_bytes())
    return "sha256:" + digest.hexdigest()[:16]


def file_checksums(model_dir: str | Path) -> dict[str, str]:
    """sha256 hex of MODEL_FILES and of the DERIVED_FILES present (what `files` lists)."""
    directory = Path(model_dir)
    derived = [name for name in DERIVED_FILES if (directory / name).is_file()]
    return {name: _sha256(directory / name) for name in (*MODEL_FILES, *derived)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(model_dir: str | Path, manifest: ModelManifest) -> Path:
    """Write manifest.json (pretty, stable key order) into `model_dir`; returns its path."""
    path = Path(model_dir) / MANIFEST_FILE
    if not manifest.files:  # the exporters pass none: the checksums are of what they just wrote
        manifest = replace(manifest, files=file_checksums(model_dir))
    path.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def load_manifest(model_dir: str | Path, check_derived: bool = True) -> ModelManifest:
    """Read and check manifest.json and the model files of `model_dir`; ModelError if unfit.

    `check_derived=False` skips the derived files (model.onnx), for the code that rewrites them.
    """
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ModelError(
            f"model directory {directory} does not exist; pass a directory "
            "written by `sensorstream train` (e.g. models/uwave)"
        )
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing; the directory must come from `sensorstream train`")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{path} is not valid JSON ({exc}); re-export the model with `sensorstream train`"
        ) from exc
    legacy = directory / LEGACY_NETWORK_FILE
    if isinstance(data, dict) and "files" not in data and legacy.is_file():
        raise ModelError(
            f"{path} lists no file checksums and {directory} holds the pickled "
            f"{LEGACY_NETWORK_FILE}; if you trust its origin, convert it with "
            f"`python -m timesnet.migrate {directory} --trust-pickle`"
        )
    try:
        manifest = ModelManifest.from_dict(data)
    except ManifestFieldError as exc:
        raise ModelError(f"{path}: {exc}; re-export the model with `sensorstream train`") from exc
    missing = [name for name in MODEL_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelError(
            f"{directory} lacks {', '.join(missing)}; copy the whole model "
            "directory or re-export it with `sensorstream train`"
        )
    _check_files(manifest, directory, check_derived)
    return manifest


def _check_files(manifest: ModelManifest, directory: Path, check_derived: bool) -> None:
    """Every listed file's sha256 against the manifest's, then the version of the model files."""
    for name, expected in manifest.files.items():
        if name in DERIVED_FILES and not check_derived:
            continue
        if not (directory / name).is_file():  # a derived file: the model files were checked
            raise ModelError(
                f"{directory} lacks {name}, which its manifest lists; copy the whole "
                "model directory, or write it again with `sensorstream export-onnx "
                f"--model {directory}`"
            )
        actual = _sha256(directory / name)
        if actual != expected:
            raise ModelError(
                f"{directory / name}: sha256 {actual[:16]}... differs from the "
                f"manifest's {expected[:16]}...; the file was changed or damaged: "
                "restore the model directory or re-export the model"
            )
    actual = model_version(directory)
    if actual != manifest.version:
        raise ModelError(
            f"{directory / MANIFEST_FILE}: the model files hash to {actual} but "
            f"the manifest's version is {manifest.version}; re-export the model"
        )


class ManifestFieldError(ValueError):
    """A manifest field missing, of the wrong type or out of bounds; the message names it."""


def _get(data: dict, key: str) -> Any:
    if key not in data:
        raise ManifestFieldError(f"{key} is missing")
    return data[key]


def _text(data: dict, key: str) -> str:
    value = _get(data, key)
    if not isinstance(value, str) or not value.strip() or len(value) > 1000:
        raise ManifestFieldError(f"{key} must be a non-empty string of at most 1000 characters")
    return value


def _matching(data: dict, key: str, pattern: re.Pattern, shape: str) -> str:
    value = _get(data, key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ManifestFieldError(f"{key} must look like {shape}, got {_short(value)}")
    return value


def _choice(data: dict, key: str, choices: tuple[str, ...]) -> str:
    value = _get(data, key)
    if value not in choices:
        raise ManifestFieldError(f"{key} must be one of {', '.join(choices)}, got {_short(value)}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bounded_int(data: dict, key: str, low: int, high: int) -> int:
    value = _get(data, key)
    if not _is_int(value) or not low <= value <= high:
        raise ManifestFieldError(f"{key} must be an integer in {low}..{high}, got {_short(value)}")
    return value


def _object(data: dict, key: str) -> dict:
    value = _get(data, key)
    if not isinstance(value, dict):
        raise ManifestFieldError(f"{key} must be a JSON object")
    return dict(value)


def _labels(value: Any) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_LABELS
        or not all(isinstance(label, str) and label for label in value)
        or len(set(value)) != len(value)
    ):
        raise ManifestFieldError(f"labels must list 1..{MAX_LABELS} distinct non-empty strings")
    return tuple(value)


def _normalization(value: Any, channels: int) -> dict:
    if not isinstance(value, dict):
        raise ManifestFieldError("normalization must be a JSON object with mean and std")
    for key in ("mean", "std"):
        numbers = value.get(key)
        if (
            not isinstance(numbers, list)
            or len(numbers) != channels
            or not all(_is_finite(x) for x in numbers)
        ):
            raise ManifestFieldError(
                f"normalization.{key} must list {channels} finite numbers (one per channel)"
            )
    if not all(x > 0 for x in value["std"]):
        raise ManifestFieldError("normalization.std must be positive (it divides every sample)")
    return dict(value)


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _periods(value: Any, window_length: int) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(_is_int(p) and 1 <= p <= window_length for p in value)
    ):
        raise ManifestFieldError(f"periods must be null or list integers in 1..{window_length}")
    return tuple(value)


def _hyperparameters(data: dict, classes: int, channels: int, window_length: int) -> dict:
    """The `network` settings must describe the manifest's own labels and window shape."""
    value = _object(data, "hyperparameters")
    network = value.get("network")
    if not isinstance(network, dict):
        raise ManifestFieldError("hyperparameters.network must be a JSON object")
    for key, expected in (
        ("num_classes", classes),
        ("channels", channels),
        ("window_length", window_length),
    ):
        if network.get(key) != expected:
            raise ManifestFieldError(
                f"hyperparameters.network.{key} is "
                f"{_short(network.get(key))} but the manifest's labels and "
                f"window give {expected}"
            )
    return value


def _files(value: Any) -> dict[str, str]:
    if (
        not isinstance(value, dict)
        or not set(MODEL_FILES) <= set(value) <= {*MODEL_FILES, *DERIVED_FILES}
        or not all(isinstance(v, str) and _SHA256.fullmatch(v) for v in value.values())
    ):
        raise ManifestFieldError(
            f"files must map each of {', '.join(MODEL_FILES)} (and optionally "
            f"{', '.join(DERIVED_FILES)}) to its sha256 (64 hex digits)"
        )
    return dict(value)


def _training_stats(value: Any, channels: int, classes: int) -> TrainingStats | None:
    if value is None:
        return None
    try:
        return TrainingStats.from_dict(value, channels, classes)
    except ValueError as exc:
        raise ManifestFieldError(str(exc)) from None


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
