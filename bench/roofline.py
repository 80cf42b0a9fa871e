"""`python -m bench.roofline [--device cpu|gpu] [--quick] [--json OUT]`: inference against the roof.

In one run: the FLOPs per window of each shipped model (bench/flops.py, checked
against paddle.flops); the machine's float32 peak from a large GEMM through each math
library at 1 and N threads, or on a GPU (bench/gemm.py); every available predictor
runtime's windows/s at every batch size, the models and runtimes taking turns round
after round, best round kept, as FLOP/s and as a fraction of the peak; and a
per-operator profile of the default predictor at its best batch size
(bench/op_profile.py). Prints Markdown; `--json` writes every figure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import harness, runtimes
from bench.flops import ModelFlops, count_model, tool_check
from bench.gemm import Peak, measure_peaks
from bench.op_profile import (
    OpProfile,
    copy_bandwidth_gbs,
    fill_hand_flops,
    profile_onnxruntime,
    profile_paddle,
    summary,
)
from bench.predictor_rates import sweep

log = logging.getLogger(__name__)

FULL_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
QUICK_BATCHES = (1, 8)
PROFILE_RUNS = 10


def shipped_models() -> list[Path]:
    """Every model directory under models/ with a manifest, the default one first."""
    folder = harness.REPO / "models"
    found = sorted(p for p in folder.iterdir() if (p / "manifest.json").is_file())
    default = harness.model_dir()
    return sorted(found, key=lambda p: p.resolve() != default.resolve())


def windows(length: int) -> npt.NDArray[np.float32]:
    """UWave test windows end to end, [N, L, C] float32."""
    series = harness.uwave_series()
    usable = len(series) // length * length
    return np.ascontiguousarray(series[:usable].reshape(-1, length, series.shape[1]), np.float32)


def measure(device: str, threads: int, quick: bool, profile: bool = True) -> dict[str, Any]:
    """Every roofline figure, JSON-ready."""
    models = shipped_models()
    counts: dict[str, ModelFlops] = {}
    results: dict[str, Any] = {"device": device, "threads": threads, "models": {}}
    for path in models:
        try:
            counts[path.name] = count_model(path)
        except ImportError as exc:  # the count runs the dynamic network, which needs paddle
            log.warning("no FLOP count for %s: %s", path.name, exc)
            continue
        tool = tool_check(path)
        found = counts[path.name]
        hand = sum(v[0] for k, v in found.by_kind().items() if k in ("conv", "linear"))
        results["models"][path.name] = {
            "path": str(path),
            "flops_nominal": found.nominal,
            "flops_effective": found.effective,
            "by_kind": {k: {"nominal": a, "effective": b} for k, (a, b) in found.by_kind().items()},
            "uncounted_layer_types": list(found.uncounted),
            "paddle_flops_macs": tool,
            "hand_conv_linear_over_2x_tool": hand / (2 * tool) if tool else None,
        }
    cpu_threads = tuple(dict.fromkeys((1, threads, os.cpu_count() or threads)))
    peaks = measure_peaks(device, cpu_threads, repeats=1 if quick else 2, quick=quick)
    results["peaks"] = [vars(p) for p in peaks]
    peak = machine_peak(peaks, threads, device)
    results["peak_gflops"] = peak
    predictors, inputs = _load_all(models, device, threads)
    batches = QUICK_BATCHES if quick else FULL_BATCHES
    rates = sweep(predictors, inputs, batches, 1 if quick else 3, 0.05 if quick else 0.4)
    results["achieved"] = _achieved(rates, counts, peak)
    if profile:
        results["profile"] = _profile_default(
            predictors, inputs, rates, counts, (device, threads, peak)
        )
    for predictor in predictors.values():
        predictor.close()
    return results


def machine_peak(peaks: list[Peak], threads: int, device: str) -> float:
    """The best float32 GEMM rate at the predictors' thread count (on a GPU: TF32 off)."""
    if device != "cpu":
        fp32 = [p.gflops for p in peaks if p.precision == "fp32"]
        return max(fp32 or [p.gflops for p in peaks])
    return max(p.gflops for p in peaks if p.threads == threads)


def _load_all(
    models: list[Path], device: str, threads: int
) -> tuple[dict[str, Any], dict[str, npt.NDArray[np.float32]]]:
    """One predictor per (model, available runtime), keyed "model/runtime"."""
    predictors: dict[str, Any] = {}
    inputs: dict[str, npt.NDArray[np.float32]] = {}
    for path in models:
        for runtime in runtimes.available(path, device):
            key = f"{path.name}/{runtime}"
            predictors[key] = runtimes.load(path, runtime, device, threads)
            inputs[key] = windows(predictors[key].manifest.window_length)
    return predictors, inputs


def _achieved(
    rates: dict[str, dict[int, float]], counts: dict[str, ModelFlops], peak: float
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, by_batch in rates.items():
        model, runtime = key.split("/")
        flops = counts.get(model)
        best = max(by_batch, key=lambda b: by_batch[b])
        row: dict[str, Any] = {
            "model": model,
            "runtime": runtime,
            "windows_per_s": {str(b): r for b, r in by_batch.items()},
            "best_batch": best,
            "best_windows_per_s": by_batch[best],
        }
        if flops is not None:
            row["gflops_effective"] = {
                str(b): r * flops.effective / 1e9 for b, r in by_batch.items()
            }
            row["fraction_of_peak_effective"] = {
                str(b): r * flops.effective / 1e9 / peak for b, r in by_batch.items()
            }
            row["fraction_of_peak_nominal"] = {
                str(b): r * flops.nominal / 1e9 / peak for b, r in by_batch.items()
            }
        found[key] = row
    return found


def _profile_default(
    predictors: dict[str, Any],
    inputs: dict[str, npt.NDArray[np.float32]],
    rates: dict[str, dict[int, float]],
    counts: dict[str, ModelFlops],
    where: tuple[str, int, float],
) -> dict[str, Any]:
    """The default model on the default runtime (else the first available), at its best batch.

    `where` is (device, threads, peak GFLOP/s).
    """
    device, threads, peak = where
    default_model = harness.model_dir().name
    runtime = runtimes.default_runtime()
    key = f"{default_model}/{runtime}"
    if key not in predictors:
        key = next(k for k in predictors if k.startswith(f"{default_model}/"))
        runtime = key.split("/")[1]
    batch = max(rates[key], key=lambda b: rates[key][b])
    x = np.ascontiguousarray(np.resize(inputs[key], (batch, *inputs[key].shape[1:])))
    runs = max(3, min(PROFILE_RUNS, int(2 * rates[key][batch] / batch)))
    found: OpProfile
    if runtime == "onnxruntime":
        onnx = harness.model_dir() / runtimes.ONNX_FILE
        found = profile_onnxruntime(onnx, _normalized(predictors[key], x), threads, device, runs)
    else:
        found = profile_paddle(predictors[key], x, device, runs)
    if default_model in counts:
        fill_hand_flops(found, counts[default_model])
    return summary(found, peak, copy_bandwidth_gbs()) | {"model": default_model}


def _normalized(predictor: Any, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """What the predictor feeds its graph: the manifest's normalization applied to x."""
    from timesnet.normalization import Normalization

    normalization = Normalization.from_dict(predictor.manifest.normalization)
    return np.ascontiguousarray(normalization.apply(x), dtype=np.float32)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.roofline", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--device", default="cpu", help="cpu | gpu | gpu:N (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="predictor CPU threads")
    parser.add_argument("--quick", action="store_true", help="fewer batch sizes and rounds")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the tables, write the JSON; exit 2 with one line when no GPU is usable."""
    from bench.roofline_report import tables
    from timesnet.native_stdout import native_stdout_to_stderr
    from timesnet.paddle_warnings import hide_ccache_warning

    args = parse_args(argv)
    hide_ccache_warning()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.device != "cpu":
        line = runtimes.no_cuda_line()
        if line is not None:
            print(line)
            return 2
    started = time.monotonic()
    with native_stdout_to_stderr():  # Paddle's C++ prints to fd 1; stdout is for the tables
        results = measure(args.device, args.threads, args.quick)
    harness.record_run(results, "python -m bench.roofline", argv, started)
    print(tables(results))
    harness.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
