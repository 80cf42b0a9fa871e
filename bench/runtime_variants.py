"""The predictors `python -m bench.runtimes` compares: each runtime in FP32, then reduced precision.

FP32 variants are the product's own (`load_predictor(..., runtime=...)`). The reduced
precision ones are built here on the same model.onnx and wrapped in the product's
`Predictor` with the product's engines, so normalization, checks and request handling
are the ones the worker would use:

- ``openvino-bf16``: OpenVINO's CPU plugin with ``INFERENCE_PRECISION_HINT`` bf16 (only
  where the CPU reports BF16; without it OpenVINO would quietly run FP32).
- ``onnxruntime-int8``: `onnxruntime.quantization.quantize_static`, QDQ, per-channel
  int8 weights, uint8 activations, MinMax, Conv and MatMul, after `quant_pre_process`
  (its symbolic shape inference gives up on the exported Reshapes, so it is skipped).
- ``openvino-int8``: `nncf.quantize` (preset PERFORMANCE); nncf comes with the dev extra,
  and without it the row is skipped with the reason.

Both int8 variants are calibrated on the normalized UWave TRAINING file only; the test
file scores them.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import runtimes

log = logging.getLogger(__name__)

CALIBRATION_BATCH = 8


@dataclass(frozen=True)
class Variant:
    """One way to serve the model: a name for tables and how to load it."""

    name: str  # "onnxruntime", "openvino-bf16", ...
    runtime: str  # the product runtime it runs on
    precision: str  # fp32 | bf16 | int8
    load: Callable[[], Any]  # -> a predictor (predict_batch, close, manifest)


def fp32_variants(model_dir: Path, device: str, threads: int) -> list[Variant]:
    """Every runtime this machine can serve `model_dir` with, in FP32, the default first."""
    return [
        Variant(runtime, runtime, "fp32", _loader(model_dir, runtime, device, threads))
        for runtime in runtimes.available(model_dir, device)
    ]


def reduced_variants(
    model_dir: Path, threads: int, calibration: npt.NDArray[np.float32], folder: Path
) -> tuple[list[Variant], dict[str, str]]:
    """bf16 and int8 variants on the CPU, and why each missing one is missing.

    `calibration` is raw TRAINING windows [N, L, C]; `folder` holds the quantized files.
    """
    found: list[Variant] = []
    skipped: dict[str, str] = {}
    onnx = model_dir / runtimes.ONNX_FILE
    if not onnx.is_file():
        reason = f"no {runtimes.ONNX_FILE} in {model_dir} (sensorstream export-onnx writes it)"
        return [], dict.fromkeys(("openvino-bf16", "onnxruntime-int8", "openvino-int8"), reason)
    if not runtimes.importable("openvino"):
        skipped["openvino-bf16"] = skipped["openvino-int8"] = "openvino is not installed"
    elif not _cpu_has_bf16():
        skipped["openvino-bf16"] = "this CPU reports no BF16 to OpenVINO"
    else:
        found.append(
            Variant("openvino-bf16", "openvino", "bf16", lambda: _openvino(model_dir, threads))
        )
    if runtimes.importable("onnxruntime"):
        quantized = folder / "model.int8.onnx"
        found.append(
            Variant(
                "onnxruntime-int8",
                "onnxruntime",
                "int8",
                lambda: _ort_int8(model_dir, threads, calibration, quantized),
            )
        )
    else:
        skipped["onnxruntime-int8"] = "onnxruntime is not installed"
    if "openvino-int8" not in skipped:
        if importlib.util.find_spec("nncf") is None:
            skipped["openvino-int8"] = "nncf is not installed (pip install nncf)"
        else:
            found.append(
                Variant(
                    "openvino-int8",
                    "openvino",
                    "int8",
                    lambda: _openvino(model_dir, threads, calibration),
                )
            )
    return found, skipped


@contextmanager
def scratch_folder() -> Iterator[Path]:
    """A temporary folder for quantized models, outside the repository."""
    with tempfile.TemporaryDirectory(prefix="sensorstream-variants-") as folder:
        yield Path(folder)


def normalized(model_dir: Path, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """x as the model's graph sees it: the manifest's normalization applied."""
    from timesnet.manifest import load_manifest
    from timesnet.normalization import Normalization

    normalization = Normalization.from_dict(load_manifest(model_dir).normalization)
    return np.ascontiguousarray(normalization.apply(x), dtype=np.float32)


def _loader(model_dir: Path, runtime: str, device: str, threads: int) -> Callable[[], Any]:
    return lambda: runtimes.load(model_dir, runtime, device, threads)


def _cpu_has_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _openvino(
    model_dir: Path, threads: int, calibration: npt.NDArray[np.float32] | None = None
) -> Any:
    """bf16 (no calibration) or NNCF int8 (calibration given) through the product's engine."""
    import openvino as ov

    from timesnet import openvino_engine
    from timesnet.manifest import load_manifest
    from timesnet.predictor import Predictor

    core = ov.Core()
    model = core.read_model(str(model_dir / runtimes.ONNX_FILE))
    precision = "bf16"
    if calibration is not None:
        import nncf

        samples = normalized(model_dir, calibration)
        dataset = nncf.Dataset([samples[i : i + 1] for i in range(len(samples))])
        model = nncf.quantize(
            model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(samples)
        )
        precision = "f32"  # int8 where NNCF put FakeQuantize, FP32 elsewhere
    config = {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": threads,
    }
    compiled = core.compile_model(model, "CPU", config)
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    return Predictor(
        load_manifest(model_dir),
        openvino_engine.OpenVinoEngine(compiled, requests),
        "openvino",
        "cpu",
    )


def _ort_int8(
    model_dir: Path, threads: int, calibration: npt.NDArray[np.float32], quantized: Path
) -> Any:
    """quantize_static QDQ on the TRAINING windows, served by the product's ORT engine."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from timesnet import ort_engine
    from timesnet.manifest import load_manifest
    from timesnet.predictor import Predictor

    # model.onnx keeps its weights in model.pdiparams (external data); the quantizer copies
    # files to temporary folders, so it gets a self-contained copy
    source = quantized.with_suffix(".fp32.onnx")
    onnx.save_model(onnx.load(str(model_dir / runtimes.ONNX_FILE)), str(source))
    prepared = quantized.with_suffix(".pre.onnx")
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    probe = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    input_name = probe.get_inputs()[0].name
    samples = normalized(model_dir, calibration)

    class TrainingWindows(CalibrationDataReader):  # type: ignore[misc]
        """The normalized training windows in batches."""

        def __init__(self) -> None:
            self._batches = iter(
                samples[i : i + CALIBRATION_BATCH]
                for i in range(0, len(samples), CALIBRATION_BATCH)
            )

        def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    quantize_static(
        str(prepared),
        str(quantized),
        TrainingWindows(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv", "MatMul"],
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"])
    return Predictor(load_manifest(model_dir), ort_engine.OrtEngine(session), "onnxruntime", "cpu")
