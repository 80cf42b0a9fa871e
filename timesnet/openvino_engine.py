"""OpenVINO over model.onnx: its ONNX frontend reads the same file ONNX Runtime does.

CPU: FP32 (``INFERENCE_PRECISION_HINT`` f32: on CPUs with bf16 the default would drop
to bf16, 0.015 off in probability), the THROUGHPUT hint with ``threads`` threads, which
compiles one stream per core; a batch is split across the plugin's optimal number of
infer requests (one per stream), run at once and joined. On models/uwave that gave
1.6-1.9x Paddle Inference's windows/s at the best batch, probabilities within 5e-7 of
Paddle's and batch invariance exactly 0; at batch 1 one request (one stream, one
thread) does the work, so ONNX Runtime is the faster choice for small batches.

GPU ("gpu" / "gpu:N") is OpenVINO's "GPU" / "GPU.N" plugin: Intel GPUs, through OpenCL.

GIL: waiting on the requests releases it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from timesnet.engine import gpu_index, import_runtime, onnx_file
from timesnet.errors import DeviceError, ModelError
from timesnet.manifest import ModelManifest

RUNTIME = "openvino"


class OpenVinoEngine:
    """A compiled OpenVINO model and its infer requests (one per stream)."""

    def __init__(self, compiled: Any, requests: int) -> None:
        self._compiled = compiled
        self._requests = [compiled.create_infer_request() for _ in range(max(1, requests))]

    def run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Normalized windows x [B, L, C] -> probabilities [B, K], B split across requests."""
        if self._compiled is None:
            raise ModelError("the OpenVINO model was closed")
        chunks = np.array_split(x, min(len(self._requests), x.shape[0]))  # contiguous rows
        working = list(zip(self._requests, chunks, strict=False))
        for request, chunk in working:
            request.start_async({0: chunk})
        for request, _ in working:
            request.wait()
        return np.concatenate([request.get_output_tensor(0).data.copy() for request, _ in working])

    def close(self) -> None:
        """Drop the requests and the compiled model (OpenVINO frees them with the last ref)."""
        self._requests = []
        self._compiled = None


def load_openvino_engine(
    model_dir: Path, manifest: ModelManifest, device: str, threads: int
) -> OpenVinoEngine:
    """model.onnx of `model_dir` in OpenVINO on "cpu", "gpu" or "gpu:N"."""
    gpu = gpu_index(device)
    ov = import_runtime("openvino", "openvino")
    path = onnx_file(model_dir, manifest, RUNTIME)
    core = ov.Core()
    config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"}
    target = "CPU"
    if gpu is None:
        config["INFERENCE_NUM_THREADS"] = threads
    else:
        target = _gpu_target(core.available_devices, device, gpu)
    try:
        compiled = core.compile_model(core.read_model(str(path)), target, config)
        requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long C++ traces
        raise ModelError(
            f"OpenVINO could not load {path} on {device}: {str(exc).strip().splitlines()[0]}"
        ) from exc
    return OpenVinoEngine(compiled, requests)


def _gpu_target(available: list[str], device: str, gpu: int) -> str:
    """OpenVINO's name of GPU `gpu` ("GPU" names GPU.0), or ModelError if it has none such."""
    wanted = {f"GPU.{gpu}"} | ({"GPU"} if gpu == 0 else set())
    found = wanted.intersection(available)
    if not found:
        raise DeviceError(
            f"device {device!r} requested but OpenVINO sees no such GPU (it sees "
            f"{', '.join(available) or 'none'}; its GPU plugin runs Intel GPUs); "
            "use device 'cpu' or runtime 'onnxruntime'"
        )
    return min(found)
