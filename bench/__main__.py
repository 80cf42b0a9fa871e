"""`python -m bench [--quick] [--device cpu|gpu] [--json OUT]`: ceilings and pipeline in one run.

Starts a LocalKafka on a free port (or uses $SENSORSTREAM_BOOTSTRAP), fills topics
with UWave-like records, and measures, in this order: the consumer ceiling and the
worker's ingest on the same topics, the predictor alone per batch size, the worker
when the predictor is the bottleneck, latency at 50 % load (at-least-once and
exactly-once), backfill, replay, memory per active device, the roofline (FLOPs per
window, the GEMM peak, each runtime's share of it: bench/roofline.py) and the worker
against the plain loop a user would write (bench/user_loop.py). Prints a Markdown
table; `--json` writes every figure. `--device gpu` runs the predictors on the GPU
(stops with one "no CUDA" line where no runtime reaches one).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench import harness, report, roofline, runtimes, suite, user_loop
from stream.commands.arguments import RUNTIMES
from stream.core.allocator import tune_allocator


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI): under two minutes")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument(
        "--threads", type=int, default=2, help="predictor CPU threads (model.threads)"
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="onnxruntime",
        help="inference runtime (model.runtime)",
    )
    parser.add_argument("--device", default="cpu", help="cpu | gpu | gpu:N (model.device)")
    return parser.parse_args(argv)


def measure(
    sizes: suite.Sizes, threads: int, runtime: str, results: dict[str, Any], device: str = "cpu"
) -> None:
    """Every figure, in one run against one broker, filled into `results` as measured."""
    from timesnet.predictor import load_predictor

    model = str(harness.model_dir())
    series = harness.uwave_series()
    predictor = load_predictor(model, device=device, threads=threads, runtime=runtime)
    results.update(
        {
            "machine": harness.machine(),
            "versions": harness.versions(),
            "model": {
                "path": model,
                "name": predictor.manifest.name,
                "version": predictor.manifest.version,
                "threads": threads,
                "device": device,
                "runtime": runtime,
            },
        }
    )
    with harness.broker() as bootstrap:
        devices = sizes.ingest_devices
        makers = {
            "binary": lambda: harness.binary_chunk_workload(series, devices, sizes.binary_chunks),
            "chunk": lambda: harness.chunk_workload(series, devices, sizes.ingest_chunks),
            "single": lambda: harness.single_workload(series, devices, sizes.single_samples),
        }
        results["ingest"] = {
            name: suite.ingest(bootstrap, predictor, model, make) for name, make in makers.items()
        }
        pred = results["predictor"] = suite.predictor_ceiling(predictor, series, sizes)
        bound = results["inference_bound"] = suite.inference_bound(
            bootstrap,
            predictor,
            model,
            series,
            sizes,
            pred["best_batch"],
            pred["best_windows_per_s"],
        )
        # (5) runs the config of (4) at half its measured capacity, so "full batch" is its max_batch
        results["full_batch_inference_ms"] = _full_batch_ms(
            predictor, series, sizes, bound["max_batch"]
        )
        results["latency"] = {
            mode.replace("-", "_"): suite.latency(
                bootstrap,
                predictor,
                model,
                bound["windows_per_s"],
                sizes.latency_s,
                mode,
                bound["max_batch"],
            )
            for mode in ("at-least-once", "exactly-once")
        }
        backfill = harness.chunk_workload(series, sizes.backfill_devices, sizes.backfill_chunks)
        topic = suite.fill_new_topic(bootstrap, backfill)
        results["backfill"] = suite.backfill_best_of(
            bootstrap, predictor, model, topic, backfill, 2
        )
        results["exactly_once"] = _eos_ratios(results)
        results["replay"] = _replays(
            bootstrap,
            model,
            results,
            topic,
            predictor.manifest.window_length,
            (runtime, device, threads),
        )
        predictor.close()  # the next parts load their own, one per runtime
        results["user_loop"] = user_loop.measure(
            bootstrap, threads, sizes is suite.QUICK, device, runtime
        )
    results["memory"] = suite.memory(sizes.memory_devices)
    results["roofline"] = roofline.measure(device, threads, sizes is suite.QUICK)


def _full_batch_ms(predictor: Any, series: Any, sizes: suite.Sizes, batch: int) -> float:
    """Median ms of one predictor call at `batch` windows (the latency target's unit)."""
    from bench.ceilings import predictor_sweep

    return predictor_sweep(predictor, series, [batch], sizes.predictor_budget_s)[0].batch_s * 1000


def _eos_ratios(results: dict[str, Any]) -> dict[str, float]:
    back, lat = results["backfill"], results["latency"]
    return {
        "throughput_ratio": back["exactly_once"]["samples_per_s"]
        / back["at_least_once"]["samples_per_s"],
        "latency_p99_ratio": lat["exactly_once"]["latency_p99_ms"]
        / lat["at_least_once"]["latency_p99_ms"],
        "visible_latency_p99_ratio": (
            lat["exactly_once"]["visible_latency_p99_ms"]
            / lat["at_least_once"]["visible_latency_p99_ms"]
        ),
    }


def _replays(
    bootstrap: str,
    model: str,
    results: dict[str, Any],
    backfill_topic: str,
    length: int,
    where: tuple[str, str, int],
) -> dict[str, Any]:
    """(9) both replays; `where` is (runtime, device, threads) of the replay's predictor."""
    consumer = results["ingest"]["chunk"]["consumer_samples_per_s"]
    best = results["predictor"]["best_windows_per_s"]
    chunk = results["ingest"]["chunk"]
    found = {
        "ingest_topic": suite.replay(
            bootstrap, model, where[0], chunk["topic"], chunk["hop"], *where[1:]
        ),
        "backfill_topic": suite.replay(
            bootstrap, model, where[0], backfill_topic, length, *where[1:]
        ),
    }
    for r in found.values():
        r["ratio_to_consumer"] = r["samples_per_s"] / consumer
        r["ratio_to_predictor"] = r["windows_per_s"] / best
    return found


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write the JSON."""
    from timesnet.native_stdout import native_stdout_to_stderr
    from timesnet.paddle_warnings import hide_ccache_warning

    args = parse_args(argv)
    hide_ccache_warning()
    if args.device != "cpu":
        line = runtimes.no_cuda_line()
        if line is not None:
            print(line)
            return 2
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # reconnect chatter while topics settle
    # The worker tunes malloc when it starts; the ceilings run in this process before it,
    # so tune first: both sides of every ratio then run under the same allocator.
    tune_allocator()
    started = time.monotonic()
    results: dict[str, Any] = {}
    try:
        with native_stdout_to_stderr():  # Paddle's C++ prints to fd 1; stdout is for the table
            measure(
                suite.QUICK if args.quick else suite.FULL,
                args.threads,
                args.runtime,
                results,
                args.device,
            )
    except BaseException:
        # what was measured before the failure is still worth reading
        sys.stderr.write(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
        raise
    results["run"] = {
        "quick": args.quick,
        "wall_s": time.monotonic() - started,
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
    }
    print(report.table(results))
    print(f"\nwall time {results['run']['wall_s']:.0f} s", file=sys.stderr)
    harness.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
