"""The batch-invariant predictor the worker calls, over one of three inference runtimes.

`load_predictor(model_dir, device, threads, runtime)` loads a model directory into
ONNX Runtime (the default: the fastest runtime that keeps batch invariance and the
accuracy), OpenVINO or Paddle Inference, and wraps it in `Predictor`, which does what
does not depend on the runtime: input checks, normalization, one call at a time, close.

- ``"onnxruntime"`` (timesnet/ort_engine.py) and ``"openvino"``
  (timesnet/openvino_engine.py) read ``model.onnx`` (timesnet/onnx_export.py; a
  model without it names the command that writes it) and never import Paddle.
- ``"paddle"`` (timesnet/paddle_engine.py) reads the exported Paddle graph.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from timesnet.engine import InferenceEngine, gpu_index
from timesnet.errors import ModelError
from timesnet.manifest import ModelManifest, load_manifest
from timesnet.native_stdout import native_stdout_discarded
from timesnet.normalization import Normalization

logger = logging.getLogger(__name__)

Runtime = Literal["paddle", "onnxruntime", "openvino"]
RUNTIMES: tuple[Runtime, ...] = ("paddle", "onnxruntime", "openvino")
DEFAULT_RUNTIME: Runtime = "onnxruntime"


class Predictor:
    """Probabilities for raw windows; one call at a time (a lock serializes concurrent calls).

    A `timesnet.batch_predictor.BatchPredictor`. Each window's result is independent of
    its batch-mates (periods are fixed in the graph; tests/timesnet proves it to 1e-5
    for batches of 1, 7, 64 and 320, in every runtime).

    GIL: ONNX Runtime and OpenVINO release it while a batch runs, so a worker's Kafka
    and HTTP threads go on meanwhile. Paddle Inference keeps it (a pure-Python loop in
    another thread ran at 2-3 % of its speed): a batch pauses the other Python threads
    for its length; keep batches short or put that predictor in its own process.
    """

    def __init__(
        self, manifest: ModelManifest, engine: InferenceEngine, runtime: Runtime, device: str
    ) -> None:
        self.manifest = manifest
        self.runtime = runtime
        self.device = device
        self._normalization = Normalization.from_dict(manifest.normalization)
        self._engine: InferenceEngine | None = engine
        self._lock = threading.Lock()

    @property
    def num_classes(self) -> int:
        """K, the number of labels."""
        return len(self.manifest.labels)

    def predict_batch(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Raw windows x [B, L, C] -> probabilities float32 [B, K] (normalization applied here)."""
        self._open_engine()  # a closed predictor says so before judging the input
        windows = self._check(x)
        if windows.shape[0] == 0:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        normalized = np.ascontiguousarray(self._normalization.apply(windows), dtype=np.float32)
        with self._lock:
            probabilities = self._open_engine().run(normalized)  # [B, K]; again under the lock
        return np.asarray(probabilities, dtype=np.float32)

    def predict_one(self, window: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """One raw window [L, C] -> probabilities [K]."""
        return self.predict_batch(np.asarray(window)[None])[0]

    def close(self) -> None:
        """Release the runtime's model (graph, weights, buffers); idempotent.

        Waits for a prediction in progress. Afterwards every predict call raises ModelError.
        """
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                logger.info(
                    "predictor closed model=%s version=%s runtime=%s",
                    self.manifest.name,
                    self.manifest.version,
                    self.runtime,
                )
            self._engine = None

    def _open_engine(self) -> InferenceEngine:
        """The engine, or a ModelError saying the predictor was closed."""
        engine = self._engine
        if engine is None:
            raise ModelError(
                f"the predictor of model {self.manifest.name} version {self.manifest.version} "
                "was closed; load the model again (load_predictor) to predict"
            )
        return engine

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


def load_predictor(
    model_dir: str | Path,
    device: str = "cpu",
    threads: int = 2,
    runtime: Runtime = DEFAULT_RUNTIME,
) -> Predictor:
    """Load a model directory in `runtime` on "cpu", "gpu" or "gpu:N", and warm it up."""
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if threads < 1:
        raise ModelError(f"threads must be >= 1, got {threads}")
    gpu_index(device)  # a bad device name is one line before anything loads
    manifest = load_manifest(model_dir)
    directory = Path(model_dir)
    predictor = Predictor(
        manifest, _load_engine(runtime, directory, manifest, device, threads), runtime, device
    )
    # The first runs pick kernels and allocate; pay for that at load, not on live data.
    warmup = np.zeros((1, manifest.window_length, manifest.channels), dtype=np.float32)
    with native_stdout_discarded():  # Paddle's first run prints debug lines on fd 1
        predictor.predict_batch(warmup)
        predictor.predict_batch(np.repeat(warmup, 8, axis=0))
    logger.info(
        "predictor loaded model=%s version=%s runtime=%s device=%s threads=%d",
        manifest.name,
        manifest.version,
        runtime,
        device,
        threads,
    )
    return predictor


def _load_engine(
    runtime: Runtime, directory: Path, manifest: ModelManifest, device: str, threads: int
) -> InferenceEngine:
    """The runtime's engine over the model; only that runtime's package is imported."""
    if runtime == "onnxruntime":
        from timesnet.ort_engine import load_ort_engine

        return load_ort_engine(directory, manifest, device, threads)
    if runtime == "openvino":
        from timesnet.openvino_engine import load_openvino_engine

        return load_openvino_engine(directory, manifest, device, threads)
    from timesnet.paddle_engine import load_paddle_engine

    return load_paddle_engine(directory, device, threads)
