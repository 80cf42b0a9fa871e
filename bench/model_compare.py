"""`python -m bench.model_compare [--quick] [--json OUT] [--runtime R ...]`: models side by side.

For each model directory (default models/uwave and models/uwave-tcn, plus any
`--also NAME=DIR`, e.g. a distilled student) in each runtime asked for (default
onnxruntime; repeat --runtime to compare runtimes, rows are then NAME@RUNTIME and
the ratios to models/uwave are left out): accuracy on the UWave test set through
the serving predictor, FLOPs per window (TimesNet and its ensembles), then windows/s
of the predictor alone at each batch size; each `--also` TimesNet's speed and FLOPs
are also given as ratios to models/uwave. Throughput rounds alternate between the
models (round 1: every model, every batch size; round 2: again ...) and each figure is
the best round, so a burst of load from another process on this shared machine hits
every model alike instead of deciding the ratio. Prints a Markdown table; `--json`
writes every figure.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import harness
from bench.predictor_rates import sweep
from stream.commands.arguments import RUNTIMES

log = logging.getLogger(__name__)

MODELS = {
    "timesnet": harness.REPO / "models" / "uwave",
    "tcn": harness.REPO / "models" / "uwave-tcn",
}
FULL_BATCHES = (1, 4, 8, 16, 32, 64, 128, 256)
QUICK_BATCHES = (1, 8, 64)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.model_compare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer batch sizes and rounds")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--threads", type=int, default=2, help="predictor CPU threads")
    parser.add_argument(
        "--runtime",
        dest="runtimes",
        action="append",
        choices=RUNTIMES,
        help="inference runtime (repeatable: each model in each; default onnxruntime)",
    )
    parser.add_argument("--timesnet", type=Path, default=MODELS["timesnet"], help="model dir")
    parser.add_argument("--tcn", type=Path, default=MODELS["tcn"], help="model dir")
    parser.add_argument(
        "--also",
        type=_named_dir,
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another model to measure and compare with --timesnet (repeatable)",
    )
    return parser.parse_args(argv)


def _named_dir(text: str) -> tuple[str, Path]:
    """NAME=DIR of --also."""
    name, _, path = text.partition("=")
    if not name or not path or name in MODELS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=DIR with NAME other than {', '.join(MODELS)}, got {text!r}"
        )
    return name, Path(path)


def timesnet_flops(hyperparameters: dict[str, Any], periods: tuple[int, ...]) -> int | None:
    """2 x multiply-adds per window of a TimesNet (x members of an ensemble); None otherwise.

    Counts the token convolution, every Inception convolution on each period's folded
    grid and the linear head; the FFT-free embedding sums, GELU, LayerNorm and softmax
    are under 1 % and left out.
    """
    net = hyperparameters.get("network", {})
    if "num_kernels" not in net:
        return None
    length, d_model, d_ff = net["window_length"], net["d_model"], net["d_ff"]
    kernel_area = sum((2 * i + 1) ** 2 for i in range(net["num_kernels"]))
    cells = sum(math.ceil(length / period) * period for period in periods)  # padded grids
    blocks = net["e_layers"] * cells * 2 * d_model * d_ff * kernel_area
    token = length * net["channels"] * d_model * 3
    head = length * d_model * net["num_classes"]
    members = hyperparameters.get("ensemble", {}).get("members", 1)
    return 2 * members * (token + blocks + head)


def accuracy(predictor: Any, x: npt.NDArray[np.float32], y: npt.NDArray[np.int64]) -> float:
    """Share of test windows x [N, L, C] whose top class is y [N] (batches of 64)."""
    parts = [predictor.predict_batch(x[i : i + 64]) for i in range(0, len(x), 64)]
    return float((np.concatenate(parts).argmax(axis=1) == y).mean())


def compare(
    model_dirs: dict[str, Path], quick: bool, threads: int, runtimes: tuple[str, ...]
) -> dict[str, Any]:
    """Every figure of the comparison, as one JSON-ready dict (rows "model" or "model@runtime")."""
    from timesnet.predictor import load_predictor
    from timesnet.readers import read_dataset

    test = read_dataset(harness.uwave_test_file(), 315)
    rows = {
        (name if len(runtimes) == 1 else f"{name}@{runtime}"): (path, runtime)
        for name, path in model_dirs.items()
        for runtime in runtimes
    }
    predictors = {
        row: load_predictor(path, threads=threads, runtime=runtime)
        for row, (path, runtime) in rows.items()
    }
    batch_sizes = QUICK_BATCHES if quick else FULL_BATCHES
    rates = sweep(
        predictors,
        {row: test.x for row in predictors},
        batch_sizes,
        rounds=2 if quick else 3,
        min_s=0.5 if quick else 2.0,
    )
    results: dict[str, Any] = {
        "machine": harness.machine(),
        "versions": harness.versions(),
        "threads": threads,
        "runtimes": list(runtimes),
        "quick": quick,
        "models": {},
    }
    for name, predictor in predictors.items():
        best_batch = max(rates[name], key=rates[name].get)
        results["models"][name] = {
            "path": str(rows[name][0]),
            "runtime": rows[name][1],
            "architecture": predictor.manifest.architecture,
            "version": predictor.manifest.version,
            "gflops_per_window": _gflops(predictor.manifest),
            "test_accuracy": accuracy(predictor, test.x, test.y),
            "test_cases": len(test),
            "windows_per_s": {str(b): round(r, 1) for b, r in rates[name].items()},
            "batch1_windows_per_s": round(rates[name][1], 1),
            "best_batch": best_batch,
            "best_windows_per_s": round(rates[name][best_batch], 1),
        }
    models = results["models"]
    if "timesnet" in models:
        results["over_timesnet"] = {
            name: _ratios(row, models["timesnet"])
            for name, row in models.items()
            if name not in MODELS and row["gflops_per_window"] is not None
        }
    if {"timesnet", "tcn"} <= set(models):
        results["tcn_over_timesnet"] = {
            "best_batch": round(
                models["tcn"]["best_windows_per_s"] / models["timesnet"]["best_windows_per_s"], 2
            ),
            "batch1": round(
                models["tcn"]["batch1_windows_per_s"] / models["timesnet"]["batch1_windows_per_s"],
                2,
            ),
        }
    return results


def _gflops(manifest: Any) -> float | None:
    """GFLOPs per window of a TimesNet model directory's network, None for other networks."""
    flops = timesnet_flops(manifest.hyperparameters, tuple(manifest.periods or ()))
    return None if flops is None else round(flops / 1e9, 4)


def _ratios(model: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """Speed of `model` over `baseline` (best batch, batch 1) and its share of their FLOPs."""
    return {
        "best_batch": round(model["best_windows_per_s"] / baseline["best_windows_per_s"], 2),
        "batch1": round(model["batch1_windows_per_s"] / baseline["batch1_windows_per_s"], 2),
        "flops_share": round(model["gflops_per_window"] / baseline["gflops_per_window"], 4),
    }


def table(results: dict[str, Any]) -> str:
    """Markdown table: one row per model, plus the speed ratio when both were measured."""
    lines = [
        "| model | runtime | architecture | GFLOPs/window | test accuracy | windows/s batch 1 "
        "| best batch | windows/s best batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["models"].values():
        gflops = "-" if row["gflops_per_window"] is None else f"{row['gflops_per_window']:.3f}"
        lines.append(
            f"| {Path(row['path']).name} | {row['runtime']} | {row['architecture']} | {gflops} "
            f"| {row['test_accuracy']:.4f} ({row['test_cases']} cases) "
            f"| {row['batch1_windows_per_s']:,.0f} | {row['best_batch']} "
            f"| {row['best_windows_per_s']:,.0f} |"
        )
    for name, other in results.get("over_timesnet", {}).items():
        lines.append("")
        lines.append(
            f"{name} / timesnet windows/s: {other['best_batch']}x at their best batch "
            f"sizes, {other['batch1']}x at batch 1; {other['flops_share']} of its FLOPs."
        )
    ratio = results.get("tcn_over_timesnet")
    if ratio:
        lines.append("")
        lines.append(
            f"TCN / TimesNet windows/s: {ratio['best_batch']}x at their best batch "
            f"sizes, {ratio['batch1']}x at batch 1 "
            f"({results['threads']} threads, best of alternating rounds)."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the table, optionally write JSON; exit 0."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from timesnet.native_stdout import native_stdout_to_stderr

    # Paddle's oneDNN kernels print diagnostics to fd 1 at each new batch shape; keep
    # stdout for the table.
    with native_stdout_to_stderr():
        model_dirs = {"timesnet": args.timesnet, "tcn": args.tcn, **dict(args.also)}
        runtimes = tuple(args.runtimes or ["onnxruntime"])
        results = compare(model_dirs, args.quick, args.threads, runtimes)
    print(table(results))
    harness.write_json(args.json, results)
    if args.json:
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
