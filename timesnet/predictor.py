"""The batch-invariant predictor the worker calls: Paddle Inference over an exported model.

CPU runs with oneDNN on. One oneDNN fuse pass, ``operator_reshape_onednn_fuse_pass``
(it folds a transpose+reshape pair into one oneDNN op), makes ``create_predictor``
fail on TimesNet-style "reshape [B, L, D] -> [B, rows, P, D] then transpose" graphs
with "The type tensor<-1x315x32xf32> of outputs[0][0] must be equal to type
tensor<-1x1x315x32xf32>" (isolated by deleting one pass at a time: the unsqueeze and
squeeze-transpose passes are innocent). This network folds channels-first and does
not hit it, but the pass is deleted anyway so that a variant cannot break serving;
turning oneDNN off instead costs 5-10x in throughput.

GPU ("gpu" or "gpu:N") uses the same API and the plain CUDA kernels; TensorRT is
not wired in because it cannot be tested on this project's CPU-only CI.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from timesnet.errors import ModelError
from timesnet.manifest import GRAPH_FILE, PARAMS_FILE, ModelManifest, load_manifest
from timesnet.normalization import Normalization
from timesnet.paddle_import import import_paddle

if TYPE_CHECKING:
    from paddle import inference

logger = logging.getLogger(__name__)

DELETED_ONEDNN_PASSES = ("operator_reshape_onednn_fuse_pass",)
GPU_MEMORY_POOL_MB = 256


@dataclass(frozen=True)
class _Runtime:
    """The Paddle Inference predictor and its input and output handles, dropped together."""

    predictor: inference.Predictor
    input: inference.Tensor
    output: inference.Tensor


class Predictor:
    """Probabilities for raw windows; one call at a time (a lock serializes concurrent calls).

    A `timesnet.batch_predictor.BatchPredictor`. Each window's result is independent of
    its batch-mates (periods are fixed in the graph; tests/timesnet proves it to 1e-5
    for batches of 1, 7, 64 and 320).

    GIL: Paddle Inference 3.x's Python binding of ``run()`` keeps the GIL on CPU and
    CUDA builds (it releases it only for Ascend). Measured here: a pure-Python loop in
    another thread ran at 2-3 % of its speed while ``run()`` worked. A worker thread
    calling `predict_batch` therefore pauses the other Python threads for the length
    of the batch; to overlap inference with Kafka I/O, put the predictor in its own
    process or keep batches short.
    """

    def __init__(self, manifest: ModelManifest, paddle_predictor: inference.Predictor) -> None:
        self.manifest = manifest
        self._normalization = Normalization.from_dict(manifest.normalization)
        self._runtime: _Runtime | None = _Runtime(
            paddle_predictor,
            paddle_predictor.get_input_handle(paddle_predictor.get_input_names()[0]),
            paddle_predictor.get_output_handle(paddle_predictor.get_output_names()[0]),
        )
        self._lock = threading.Lock()

    @property
    def num_classes(self) -> int:
        """K, the number of labels."""
        return len(self.manifest.labels)

    def predict_batch(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Raw windows x [B, L, C] -> probabilities float32 [B, K] (normalization applied here)."""
        self._open_runtime()  # a closed predictor says so before judging the input
        windows = self._check(x)
        if windows.shape[0] == 0:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        normalized = np.ascontiguousarray(self._normalization.apply(windows), dtype=np.float32)
        with self._lock:
            runtime = self._open_runtime()  # again under the lock: close may have run meanwhile
            runtime.input.reshape(list(normalized.shape))
            runtime.input.copy_from_cpu(normalized)
            runtime.predictor.run()
            probabilities = runtime.output.copy_to_cpu()  # [B, K]
        return np.asarray(probabilities, dtype=np.float32)

    def predict_one(self, window: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """One raw window [L, C] -> probabilities [K]."""
        return self.predict_batch(np.asarray(window)[None])[0]

    def close(self) -> None:
        """Release the Paddle predictor (its graph, weights and buffers); idempotent.

        Waits for a prediction in progress. Afterwards every predict call raises ModelError.
        """
        with self._lock:
            if self._runtime is not None:
                logger.info(
                    "predictor closed model=%s version=%s",
                    self.manifest.name,
                    self.manifest.version,
                )
            self._runtime = None  # the last references: Paddle frees the predictor with them

    def _open_runtime(self) -> _Runtime:
        """The runtime, or a ModelError saying the predictor was closed."""
        runtime = self._runtime
        if runtime is None:
            raise ModelError(
                f"the predictor of model {self.manifest.name} version {self.manifest.version} "
                "was closed; load the model again (load_predictor) to predict"
            )
        return runtime

    def _check(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """x as float32 [B, L, C], or a ModelError naming the expected shape."""
        windows = np.asarray(x, dtype=np.float32)
        length, channels = self.manifest.window_length, self.manifest.channels
        if windows.ndim != 3 or windows.shape[1:] != (length, channels):
            raise ModelError(
                f"model {self.manifest.name} expects windows shaped [batch, {length}, {channels}] "
                f"(length {length}, {channels} channels), got {list(windows.shape)}; "
                "check the window length and the channel count of the input"
            )
        if not np.isfinite(windows).all():
            raise ModelError("windows contain NaN or infinity; fill or drop missing samples first")
        return windows


def load_predictor(model_dir: str | Path, device: str = "cpu", threads: int = 2) -> Predictor:
    """Load an exported model for inference on "cpu", "gpu" or "gpu:N" and warm it up."""
    inference = import_paddle().inference

    manifest = load_manifest(model_dir)
    directory = Path(model_dir)
    config = inference.Config(str(directory / GRAPH_FILE), str(directory / PARAMS_FILE))
    _configure_device(config, device, threads)
    config.disable_glog_info()
    with _native_stdout_to_stderr():
        try:
            paddle_predictor = inference.create_predictor(config)
        except Exception as exc:  # Paddle raises bare RuntimeError/ValueError variants here
            raise ModelError(
                f"Paddle Inference could not load {directory} on {device}: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from exc
        predictor = Predictor(manifest, paddle_predictor)
        # The first runs pick oneDNN kernels and allocate; pay for that at load, not on live data.
        warmup = np.zeros((1, manifest.window_length, manifest.channels), dtype=np.float32)
        predictor.predict_batch(warmup)
        predictor.predict_batch(np.repeat(warmup, 8, axis=0))
    logger.info(
        "predictor loaded model=%s version=%s device=%s threads=%d",
        manifest.name,
        manifest.version,
        device,
        threads,
    )
    return predictor


@contextmanager
def _native_stdout_to_stderr() -> Iterator[None]:
    """Send file descriptor 1 to stderr for a while.

    Paddle's C++ passes print diagnostics ("ReduceMeanCheckIfOneDNNSupport") straight
    to fd 1 while building the predictor, which would corrupt JSON-lines output on stdout.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _configure_device(config: inference.Config, device: str, threads: int) -> None:
    """Point an inference.Config at the CPU (oneDNN) or a GPU; ModelError on a bad name."""
    if threads < 1:
        raise ModelError(f"threads must be >= 1, got {threads}")
    if device == "cpu":
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads)
        for pass_name in DELETED_ONEDNN_PASSES:
            config.delete_pass(pass_name)
        return
    if device == "gpu" or device.startswith("gpu:"):
        index_text = device.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise ModelError(f"device {device!r}: expected 'gpu' or 'gpu:N' with N a GPU index")
        import paddle

        if not paddle.is_compiled_with_cuda():
            raise ModelError(
                f"device {device!r} requested but this Paddle build has no CUDA; "
                "install paddlepaddle-gpu or use device 'cpu'"
            )
        config.enable_use_gpu(GPU_MEMORY_POOL_MB, int(index_text))
        return
    raise ModelError(f"unknown device {device!r}; use 'cpu', 'gpu' or 'gpu:N'")
