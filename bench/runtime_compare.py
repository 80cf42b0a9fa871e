"""`python -m bench.runtimes [--quick] [--device cpu|gpu] [--ensemble DIR] [--json OUT]`.

The runtimes side by side in one run, on the default model: Paddle Inference (oneDNN),
ONNX Runtime and OpenVINO in FP32, then OpenVINO bf16 and int8 post-training
quantization (bench/runtime_variants.py), calibrated on the UWave TRAINING file only.
For each: accuracy on the UWave test file; max |Δp| and top-class agreement against
Paddle Inference FP32 (the shipped graph) on every test case; batch invariance (max
|p(window in a batch of B) - p(window alone)|); windows/s at every batch size (the
variants take turns round after round, best round kept) and the ratio to Paddle.

When the ensemble the default model was distilled from is there (models/uwave-ensemble,
or --ensemble DIR), it runs in the same rounds on the default runtime: the default
model should reach >= 4x its windows/s at the best batch. --model DIR puts a candidate
in the default model's place.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import harness, runtime_variants, runtimes
from bench.predictor_rates import sweep

log = logging.getLogger(__name__)

FULL_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
QUICK_BATCHES = (1, 8)
INVARIANCE_BATCHES = (7, 64, 320)
ENSEMBLE_TARGET = 4.0  # the default (distilled) model >= 4x the ensemble at the best batch
REFERENCE = "paddle"


def default_ensemble() -> Path | None:
    """models/uwave-ensemble when it is there."""
    path = harness.REPO / "models" / "uwave-ensemble"
    return path if (path / "manifest.json").is_file() else None


def uwave_split(name: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """One UWave file ("TRAIN" or "TEST") as raw windows [N, L, C] and class ids [N]."""
    from timesnet.ts_format import read_ts
    from timesnet.uwave import UWAVE_TEST_FILE, UWAVE_TRAIN_FILE, find_uwave

    data = read_ts(find_uwave() / (UWAVE_TRAIN_FILE if name == "TRAIN" else UWAVE_TEST_FILE))
    if data.y is None:
        raise ValueError(f"the UWave {name} file has no labels")
    return np.ascontiguousarray(data.x, dtype=np.float32), np.asarray(data.y, dtype=np.int64)


def probabilities(predictor: Any, x: npt.NDArray[np.float32], batch: int) -> npt.NDArray[Any]:
    """predict_batch over x in batches of `batch`, [N, K]."""
    return np.concatenate(
        [predictor.predict_batch(x[i : i + batch]) for i in range(0, len(x), batch)]
    )


def invariance(
    predictor: Any, x: npt.NDArray[np.float32], alone: int, batches: tuple[int, ...]
) -> dict[str, float]:
    """Max |p(batched) - p(alone)| over the first `alone` windows, per batch size."""
    singles = probabilities(predictor, x[:alone], 1)
    found = {}
    for batch in batches:
        batched = probabilities(predictor, x[: max(batch, alone)], batch)[:alone]
        found[str(batch)] = float(np.abs(batched - singles).max())
    return found


def quality(
    predictor: Any,
    test: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]],
    reference: npt.NDArray[Any] | None,
    quick: bool,
) -> tuple[dict[str, Any], npt.NDArray[Any]]:
    """Accuracy, |Δp| and agreement against `reference`, batch invariance; and the probabilities."""
    x, y = test
    p = probabilities(predictor, x, 64)
    found: dict[str, Any] = {"accuracy": float((p.argmax(axis=1) == y).mean())}
    if reference is not None:
        found["max_abs_dp"] = float(np.abs(p - reference).max())
        found["agreement"] = float((p.argmax(axis=1) == reference.argmax(axis=1)).mean())
    batches = INVARIANCE_BATCHES[:1] + (16,) if quick else INVARIANCE_BATCHES
    found["invariance"] = invariance(predictor, x, 16 if quick else 64, batches)
    return found, p


def measure(
    device: str, threads: int, quick: bool, ensemble: Path | None, model: Path | None = None
) -> dict[str, Any]:
    """Every figure of the comparison, JSON-ready; `model` defaults to the shipped one."""
    model = model or harness.model_dir()
    test = uwave_split("TEST")
    variants = runtime_variants.fp32_variants(model, device, threads)
    results: dict[str, Any] = {
        "model": str(model),
        "device": device,
        "threads": threads,
        "reference": REFERENCE,
        "default_runtime": runtimes.default_runtime(),
        "variants": {},
        "skipped": {},
    }
    with runtime_variants.scratch_folder() as folder:
        if device == "cpu":
            reduced, results["skipped"] = runtime_variants.reduced_variants(
                model, threads, uwave_split("TRAIN")[0], folder
            )
            variants += reduced
        if ensemble is not None and ensemble.resolve() != model.resolve():
            default = results["default_runtime"]
            results["ensemble"] = {"path": str(ensemble), "runtime": default}
            variants.append(
                runtime_variants.Variant(
                    f"ensemble/{default}",
                    default,
                    "fp32",
                    lambda: runtimes.load(ensemble, default, device, threads),
                )
            )
        predictors = _load_and_score(variants, test, quick, results)
    inputs = dict.fromkeys(predictors, test[0])
    rates = sweep(
        predictors,
        inputs,
        QUICK_BATCHES if quick else FULL_BATCHES,
        2 if quick else 3,
        0.1 if quick else 0.4,
    )
    for predictor in predictors.values():
        predictor.close()
    _fill_speed(results, rates)
    return results


def _load_and_score(
    variants: list[runtime_variants.Variant],
    test: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]],
    quick: bool,
    results: dict[str, Any],
) -> dict[str, Any]:
    """Load every variant and score it; the reference (Paddle FP32) first."""
    variants = sorted(variants, key=lambda v: v.name != REFERENCE)
    reference: npt.NDArray[Any] | None = None
    predictors: dict[str, Any] = {}
    for variant in variants:
        started = time.perf_counter()
        predictors[variant.name] = variant.load()
        load_s = time.perf_counter() - started
        same_model = not variant.name.startswith("ensemble/")
        found, p = quality(predictors[variant.name], test, reference if same_model else None, quick)
        if variant.name == REFERENCE:
            reference = p
        results["variants"][variant.name] = {
            "runtime": variant.runtime,
            "precision": variant.precision,
            "load_s": load_s,
            **found,
        }
        log.info("variant=%s accuracy=%.4f load_s=%.1f", variant.name, found["accuracy"], load_s)
    return predictors


def _fill_speed(results: dict[str, Any], rates: dict[str, dict[int, float]]) -> None:
    """windows/s per batch, best, ratio to Paddle; the ensemble ratio and its target."""
    paddle = rates.get(REFERENCE)
    for name, by_batch in rates.items():
        row = results["variants"][name]
        best = max(by_batch, key=lambda b: by_batch[b])
        row["windows_per_s"] = {str(b): r for b, r in by_batch.items()}
        row["best_batch"] = best
        row["best_windows_per_s"] = by_batch[best]
        if paddle:
            row["ratio_to_paddle"] = {str(b): r / paddle[b] for b, r in by_batch.items()}
            row["best_ratio_to_paddle"] = by_batch[best] / max(paddle.values())
    if "ensemble" in results:
        default = results["default_runtime"]
        ensemble_best = results["variants"][f"ensemble/{default}"]["best_windows_per_s"]
        model_best = results["variants"][default]["best_windows_per_s"]
        results["ensemble"] |= {
            "ratio": model_best / ensemble_best,
            "target": ENSEMBLE_TARGET,
            "holds": model_best / ensemble_best >= ENSEMBLE_TARGET,
        }


def table(results: dict[str, Any]) -> str:
    """Markdown: quality and speed per variant, then the ensemble line and what was skipped."""
    rows = results["variants"]
    batches = list(next(iter(rows.values()))["windows_per_s"])
    head = (
        "| variant | precision | accuracy | max \\|Δp\\| vs Paddle FP32 | agreement | invariance "
        + "(B: max \\|Δp\\|) | "
        + " | ".join(f"b{b}" for b in batches)
        + " | best | × Paddle at best |"
    )
    lines = [head, "|" + "---|" * (8 + len(batches))]
    for name, row in rows.items():
        invariant = ", ".join(f"{b}: {v:.1g}" for b, v in row["invariance"].items())
        dp = f"{row['max_abs_dp']:.2g}" if "max_abs_dp" in row else "n/a"
        if name == results["reference"]:
            dp = "(reference)"
        agree = f"{row['agreement']:.2%}" if "agreement" in row else "n/a"
        speeds = " | ".join(f"{row['windows_per_s'][b]:,.1f}" for b in batches)
        ratio = row.get("best_ratio_to_paddle")
        lines.append(
            f"| {name} | {row['precision']} | {row['accuracy']:.4f} | {dp} | {agree} "
            f"| {invariant} | {speeds} | {row['best_windows_per_s']:,.1f} (b{row['best_batch']}) "
            f"| {f'{ratio:.2f}x' if ratio else 'n/a'} |"
        )
    ensemble = results.get("ensemble")
    if ensemble:
        lines += [
            "",
            f"{Path(results['model']).name} / {Path(ensemble['path']).name} at the best batch "
            f"({ensemble['runtime']}): "
            f"{ensemble['ratio']:.2f}x (target >= {ensemble['target']:.0f}x: "
            f"{'holds' if ensemble['holds'] else 'does NOT hold'})",
        ]
    else:
        lines += ["", "no ensemble to compare with (models/uwave-ensemble or --ensemble DIR)"]
    lines += [f"not run: {name}: {why}" for name, why in results["skipped"].items()]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.runtimes", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--device", default="cpu", help="cpu | gpu | gpu:N (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="predictor CPU threads")
    parser.add_argument("--quick", action="store_true", help="fewer batch sizes and rounds")
    parser.add_argument(
        "--model", type=Path, help="the model to compare (default: the shipped models/uwave)"
    )
    parser.add_argument(
        "--ensemble",
        type=Path,
        default=default_ensemble(),
        help="the ensemble to compare the default model with (default models/uwave-ensemble)",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write the JSON; exit 2 with one line when nothing can run."""
    from timesnet.native_stdout import native_stdout_to_stderr
    from timesnet.paddle_warnings import hide_ccache_warning

    args = parse_args(argv)
    hide_ccache_warning()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.device != "cpu" and (line := runtimes.no_cuda_line()) is not None:
        print(line)
        return 2
    started = time.monotonic()
    with native_stdout_to_stderr():  # Paddle's C++ prints to fd 1; stdout is the table
        results = measure(args.device, args.threads, args.quick, args.ensemble, args.model)
    harness.record_run(results, "python -m bench.runtimes", argv, started)
    print(table(results))
    harness.write_json(args.json, results)
    return 0
