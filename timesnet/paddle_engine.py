"""Paddle Inference over the exported Paddle graph (model.json + model.pdiparams).

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

GIL: Paddle Inference 3.x's Python binding of ``run()`` keeps the GIL on CPU and
CUDA builds (it releases it only for Ascend). Measured here: a pure-Python loop in
another thread ran at 2-3 % of its speed while ``run()`` worked, so a batch pauses
the process's other Python threads for its length.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from timesnet.engine import gpu_index
from timesnet.errors import DeviceError, ModelError, RuntimeNotInstalledError
from timesnet.manifest import GRAPH_FILE, PARAMS_FILE
from timesnet.native_stdout import native_stdout_to_stderr
from timesnet.paddle_import import import_paddle

if TYPE_CHECKING:
    from paddle import inference

DELETED_ONEDNN_PASSES = ("operator_reshape_onednn_fuse_pass",)
GPU_MEMORY_POOL_MB = 256


class PaddleEngine:
    """A Paddle Inference predictor and its input and output handles, dropped together."""

    def __init__(self, predictor: inference.Predictor) -> None:
        self._predictor: inference.Predictor | None = predictor
        self._input = predictor.get_input_handle(predictor.get_input_names()[0])
        self._output = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Normalized windows x [B, L, C] -> probabilities [B, K]."""
        if self._predictor is None:
            raise ModelError("the Paddle Inference predictor was closed")
        self._input.reshape(list(x.shape))
        self._input.copy_from_cpu(x)
        self._predictor.run()
        return self._output.copy_to_cpu()

    def close(self) -> None:
        """Drop the predictor: Paddle frees its graph, weights and buffers with the last ref."""
        self._predictor = None


def load_paddle_engine(model_dir: Path, device: str, threads: int) -> PaddleEngine:
    """The exported Paddle graph of `model_dir` on "cpu", "gpu" or "gpu:N"."""
    try:
        inference = import_paddle().inference
    except ImportError as exc:
        raise RuntimeNotInstalledError(
            "the paddle package is not installed; install it with `pip install paddlepaddle` "
            "(paddlepaddle-gpu from Paddle's index for GPUs)"
        ) from exc

    config = inference.Config(str(model_dir / GRAPH_FILE), str(model_dir / PARAMS_FILE))
    _configure_device(config, device, threads)
    config.disable_glog_info()
    with native_stdout_to_stderr():
        try:
            return PaddleEngine(inference.create_predictor(config))
        except Exception as exc:  # Paddle raises bare RuntimeError/ValueError variants here
            raise ModelError(
                f"Paddle Inference could not load {model_dir} on {device}: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from exc


def _configure_device(config: inference.Config, device: str, threads: int) -> None:
    """Point an inference.Config at the CPU (oneDNN) or a GPU; ModelError on a bad name."""
    gpu = gpu_index(device)
    if gpu is None:
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads)
        for pass_name in DELETED_ONEDNN_PASSES:
            config.delete_pass(pass_name)
        return
    import paddle

    if not paddle.is_compiled_with_cuda():
        raise DeviceError(
            f"device {device!r} requested but this Paddle build has no CUDA; "
            "install paddlepaddle-gpu or use device 'cpu'"
        )
    config.enable_use_gpu(GPU_MEMORY_POOL_MB, gpu)
