"""What each inference runtime provides to the predictor: the `InferenceEngine` protocol.

An engine runs one loaded model: normalized float32 windows [B, L, C] in, probabilities
[B, K] out. The predictor (timesnet/predictor.py) does everything else, once for all
runtimes: input checks, normalization, locking, closing. The helpers here are the parts
every engine's loader shares: device names, the runtime's import, the ONNX file.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from timesnet.errors import ModelError, RuntimeNotInstalledError
from timesnet.manifest import ONNX_FILE, ModelManifest


class InferenceEngine(Protocol):
    """One model loaded in one runtime; one call at a time (the predictor's lock sees to it)."""

    def run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Normalized, C-contiguous windows x [B, L, C], B >= 1 -> probabilities [B, K]."""
        ...

    def close(self) -> None:
        """Release the runtime's session, graph and buffers."""
        ...


def gpu_index(device: str) -> int | None:
    """None for "cpu", N for "gpu" (0) or "gpu:N"; ModelError for any other name."""
    if device == "cpu":
        return None
    if device == "gpu" or device.startswith("gpu:"):
        index_text = device.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise ModelError(f"device {device!r}: expected 'gpu' or 'gpu:N' with N a GPU index")
        return int(index_text)
    raise ModelError(f"unknown device {device!r}; use 'cpu', 'gpu' or 'gpu:N'")


def import_runtime(module: str, install: str) -> ModuleType:
    """Import a runtime's package, or RuntimeNotInstalledError saying what to pip install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RuntimeNotInstalledError(
            f"the {module} package is not installed; install it with `pip install {install}`"
        ) from exc


def onnx_file(model_dir: Path, manifest: ModelManifest, runtime: str) -> Path:
    """The checked model.onnx of a model directory, or one line saying how to write it."""
    if ONNX_FILE not in manifest.files:  # listed files were checked by load_manifest
        raise ModelError(
            f"{model_dir} has no {ONNX_FILE} (listed in its manifest), which runtime "
            f"{runtime!r} reads; write it with `sensorstream export-onnx --model {model_dir}` "
            "or use runtime 'paddle'"
        )
    return model_dir / ONNX_FILE
