"""ONNX Runtime over model.onnx: the default runtime.

CPU: the CPUExecutionProvider in FP32, ``threads`` intra-op threads, every graph
optimization. On models/uwave it ran 1.7-2.0x Paddle Inference's windows/s at the best
batch and 3-4.5x at batch 1, same accuracy, probabilities within 1e-6 of Paddle's, and
batch invariance exactly 0 (the network's amplitude reduction is over the last axis:
ORT picks a middle-axis reduction's summation order by the batch size).

Its intra-op threads do not spin after a run: between the worker's batches the CPU
belongs to the Kafka and decode threads. Measured on 2 cores with 2 ms between runs:
spinning cost 40 % more CPU per window at batch 1 for 5 % more windows/s, and nothing
at batch 64.

GPU ("gpu" / "gpu:N") needs the onnxruntime-gpu package in place of onnxruntime; its
CUDAExecutionProvider runs with deterministic compute and cuDNN's default algorithm
choice (the exhaustive search may pick other kernels from run to run).

GIL: ``InferenceSession.run`` releases it, so the process's other threads go on while
a batch runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from timesnet.engine import gpu_index, import_runtime, onnx_file
from timesnet.errors import DeviceError, ModelError
from timesnet.manifest import ModelManifest

RUNTIME = "onnxruntime"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class OrtEngine:
    """An ONNX Runtime session over one model."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name

    def run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Normalized windows x [B, L, C] -> probabilities [B, K]."""
        if self._session is None:
            raise ModelError("the ONNX Runtime session was closed")
        return self._session.run([self._output], {self._input: x})[0]

    def close(self) -> None:
        """Drop the session (ONNX Runtime frees it with the last reference)."""
        self._session = None


def load_ort_engine(
    model_dir: Path, manifest: ModelManifest, device: str, threads: int
) -> OrtEngine:
    """model.onnx of `model_dir` in ONNX Runtime on "cpu", "gpu" or "gpu:N"."""
    gpu = gpu_index(device)
    ort = import_runtime("onnxruntime", "onnxruntime" if gpu is None else "onnxruntime-gpu")
    path = onnx_file(model_dir, manifest, RUNTIME)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its constant folding warns of what it drops
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers: list[Any] = [CPU]
    if gpu is not None:
        if CUDA not in ort.get_available_providers():
            raise DeviceError(
                f"device {device!r} requested but this onnxruntime build has no CUDA; "
                "replace onnxruntime with onnxruntime-gpu or use device 'cpu'"
            )
        options.use_deterministic_compute = True
        providers = [(CUDA, {"device_id": gpu, "cudnn_conv_algo_search": "DEFAULT"}), CPU]
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # its pybind errors (Fail, InvalidGraph, ...) derive from Exception
        raise ModelError(
            f"ONNX Runtime could not load {path} on {device}: {str(exc).strip().splitlines()[-1]}"
        ) from exc
    if gpu is not None and session.get_providers()[0] != CUDA:
        raise DeviceError(
            f"device {device!r}: ONNX Runtime could not start CUDA (the CUDA and cuDNN "
            "libraries onnxruntime-gpu needs are missing or mismatched); use device 'cpu'"
        )
    return OrtEngine(session)
