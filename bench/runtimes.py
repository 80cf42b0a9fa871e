"""Which predictor runtimes this machine can run, and loading a model on each.

`python -m bench.runtimes` compares them side by side (bench/runtime_compare.py).

`timesnet.predictor.load_predictor(model_dir, device, threads, runtime)` serves a
model through Paddle Inference, ONNX Runtime or OpenVINO. A runtime is available
when its package imports and the model directory holds its files; on a GPU, when the
runtime also reaches CUDA. Benchmarks measure every available one side by side.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

RUNTIMES = ("paddle", "onnxruntime", "openvino")
PACKAGES = {"paddle": "paddle", "onnxruntime": "onnxruntime", "openvino": "openvino"}
ONNX_FILE = "model.onnx"
GPU_INSTALL = "install paddlepaddle-gpu from Paddle's index or onnxruntime-gpu (README, GPU hosts)"


def default_runtime() -> str:
    """The runtime `[model] runtime` defaults to."""
    from stream.config.schema import ModelConfig

    return str(ModelConfig().runtime)


def importable(runtime: str) -> bool:
    """Whether the runtime's package is installed."""
    return importlib.util.find_spec(PACKAGES[runtime]) is not None


def available(model_dir: str | Path, device: str = "cpu") -> list[str]:
    """The runtimes that can serve `model_dir` on `device` here, default first."""
    found = []
    for runtime in RUNTIMES:
        if not importable(runtime):
            continue
        if runtime != "paddle" and not (Path(model_dir) / ONNX_FILE).is_file():
            continue
        if device != "cpu" and gpu_problem(runtime) is not None:
            continue
        found.append(runtime)
    default = default_runtime()
    return sorted(found, key=lambda name: name != default)


def load(model_dir: str | Path, runtime: str, device: str = "cpu", threads: int = 2) -> Any:
    """load_predictor on one runtime."""
    from timesnet.predictor import RUNTIMES as KNOWN
    from timesnet.predictor import load_predictor

    chosen = next(name for name in KNOWN if name == runtime)  # the Literal the loader takes
    return load_predictor(model_dir, device=device, threads=threads, runtime=chosen)


def gpu_problem(runtime: str) -> str | None:
    """Why `runtime` cannot run on a CUDA GPU here, or None when it can."""
    if not importable(runtime):
        return f"{PACKAGES[runtime]} is not installed"
    if runtime == "paddle":
        import paddle

        if not paddle.is_compiled_with_cuda():
            return "this Paddle build is CPU-only"
        if paddle.device.cuda.device_count() == 0:
            return "Paddle sees no CUDA GPU"
        return None
    if runtime == "onnxruntime":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "onnxruntime has no CUDAExecutionProvider"
        return None
    return "OpenVINO's GPU plugin drives Intel GPUs only"


def no_cuda_line() -> str | None:
    """One line saying why no runtime reaches a CUDA GPU here, or None when one does."""
    reasons = {runtime: gpu_problem(runtime) for runtime in ("paddle", "onnxruntime")}
    if any(reason is None for reason in reasons.values()):
        return None
    detail = "; ".join(f"{name}: {reason}" for name, reason in reasons.items())
    return f"no CUDA: {detail}; {GPU_INSTALL}"


if __name__ == "__main__":
    from bench.runtime_compare import main

    sys.exit(main())
