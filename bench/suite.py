"""The measurement sequence of `python -m bench`: every figure, side by side, in one run."""

from __future__ import annotations

import gc
import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from bench import harness
from bench.ceilings import best_point, consumer_ceiling, predictor_sweep
from bench.pipeline import (
    expected_windows,
    run_worker,
    start_worker,
    stop_worker,
    summarize,
    wait_ready,
    with_group,
    worker_config,
)

log = logging.getLogger(__name__)

INFERENCE_HOP = 16
INGEST_ATTEMPTS = 2


@dataclass(frozen=True)
class Sizes:
    """How much data each measurement gets (`--quick` shrinks all of them)."""

    ingest_devices: int
    ingest_chunks: int  # chunk records per device (100 samples each)
    binary_chunks: int  # binary chunk records per device: more, as they go ~3x faster
    single_samples: int  # single-sample records per device
    bound_devices: int
    bound_samples: int  # samples per device of the inference-bound topic (hop 16)
    backfill_devices: int
    backfill_chunks: int
    batch_sizes: tuple[int, ...]
    predictor_budget_s: float
    latency_s: float
    memory_devices: tuple[int, ...]


QUICK = Sizes(4, 750, 2250, 7500, 2, 800, 20, 8, (1, 2, 4, 8, 16, 32), 0.4, 8.0, (1000, 10000))
# Ingest uses 4 devices: each yields one window per run (the hop is its whole stream),
# and the predictor must stay under 10 % of an ingest run (10 devices measured 10-15 %;
# 30,000 binary chunks and 5,000 JSON ones per device measured 8-16 % and 10-11 % once the
# worker read its own record batches).
FULL = Sizes(
    4,
    6000,
    60000,
    50000,
    16,
    4000,
    100,
    40,
    (1, 2, 4, 8, 16, 32, 64, 128),
    2.0,
    25.0,
    (1000, 10000, 100000),
)


def fill_new_topic(bootstrap: str, workload: harness.Workload) -> str:
    """A new topic holding the workload's records."""
    topic = harness.new_topic(bootstrap, workload.name)
    harness.fill_topic(bootstrap, topic, workload.records)
    return topic


def ingest(
    bootstrap: str, predictor: Any, model: str, make_workload: Callable[[], harness.Workload]
) -> dict[str, Any]:
    """(1) the consumer ceiling and (2) the worker on the same topic, hop = samples per device.

    The workload's records are dropped once they are in the topic: hundreds of
    thousands of producer-side objects would otherwise sit in the measured process,
    and every full collection of Python's GC would rescan them while kafka-python
    allocates per record (a cost no deployed worker has).
    """
    workload = make_workload()
    topic = fill_new_topic(bootstrap, workload)
    records, samples, devices = len(workload.records), workload.samples, workload.devices
    value_bytes = workload.value_bytes
    del workload
    gc.collect()
    per_device = samples // devices
    config = worker_config(bootstrap, topic, model, f"windows.hop={per_device}")
    # The devices' one window each comes out in a batch or two of up to `devices`
    # windows: a batch shape the predictor has not seen costs oneDNN's kernel set-up
    # (50-70 ms each here), which a worker pays once in its life, not per ingest.
    window = (predictor.manifest.window_length, predictor.manifest.channels)
    for batch in range(1, devices + 1):
        predictor.predict_batch(np.zeros((batch, *window), dtype=np.float32))
    # Twice each, alternated, best of each: other jobs on the machine move all by +-20 %.
    ceilings, columnar, runs = [], [], []
    for attempt in range(INGEST_ATTEMPTS):
        ceilings.append(consumer_ceiling(config.kafka, topic, records))
        columnar.append(consumer_ceiling(config.kafka, topic, records, columnar=True))
        attempt_config = with_group(config, f"{config.kafka.group_id}.{attempt}")
        runs.append(run_worker(attempt_config, predictor, samples, devices))
    ceiling = min(ceilings, key=lambda c: c.seconds)
    fetch = min(columnar, key=lambda c: c.seconds)
    run = max(runs, key=lambda r: r.samples_per_s)
    ceiling_samples_per_s = samples / ceiling.seconds
    return {
        "topic": topic,
        "records": records,
        "samples": samples,
        "mean_record_bytes": value_bytes / records,
        "hop": per_device,
        "consumer_records_per_s": ceiling.records_per_s,
        "consumer_mb_per_s": ceiling.mb_per_s,
        "consumer_samples_per_s": ceiling_samples_per_s,
        "pipeline_records_per_s": run.records_per_s,
        "pipeline_samples_per_s": run.samples_per_s,
        "pipeline_inference_share": run.inference_share,
        "ratio": run.samples_per_s / ceiling_samples_per_s,
        "columnar_consumer_records_per_s": fetch.records_per_s,
        "ratio_to_columnar": run.records_per_s / fetch.records_per_s,
    }


def predictor_ceiling(predictor: Any, series: Any, sizes: Sizes) -> dict[str, Any]:
    """(3) the predictor alone at each batch size."""
    points = predictor_sweep(predictor, series, list(sizes.batch_sizes), sizes.predictor_budget_s)
    best = best_point(points)
    return {
        "windows_per_s_by_batch": {str(p.batch): p.windows_per_s for p in points},
        "batch_s_by_batch": {str(p.batch): p.batch_s for p in points},
        "best_batch": best.batch,
        "best_windows_per_s": best.windows_per_s,
        "batching_gain": best.windows_per_s / points[0].windows_per_s,
    }


def inference_bound(
    bootstrap: str,
    predictor: Any,
    model: str,
    series: Any,
    sizes: Sizes,
    best_batch: int,
    best_windows_per_s: float,
) -> dict[str, Any]:
    """(4) the worker with hop 16 and max_batch = the predictor's best batch size."""
    length = predictor.manifest.window_length
    workload = harness.chunk_workload(series, sizes.bound_devices, sizes.bound_samples // 100)
    per_device = workload.samples // workload.devices
    topic = fill_new_topic(bootstrap, workload)
    windows = expected_windows(per_device, workload.devices, length, INFERENCE_HOP)
    config = worker_config(
        bootstrap,
        topic,
        model,
        f"windows.hop={INFERENCE_HOP}",
        f"batching.max_batch={best_batch}",
    )
    # the same batch size right before and after, so that a ratio drifting with load shows it
    before = best_point(predictor_sweep(predictor, series, [best_batch], sizes.predictor_budget_s))
    run = run_worker(config, predictor, workload.samples, windows)
    after = best_point(predictor_sweep(predictor, series, [best_batch], sizes.predictor_budget_s))
    adjacent = (before.windows_per_s + after.windows_per_s) / 2
    return {
        "topic": topic,
        "hop": INFERENCE_HOP,
        "max_batch": best_batch,
        "windows": run.windows,
        "windows_per_s": run.windows_per_s,
        "mean_batch": run.mean_batch,
        "inference_share": run.inference_share,
        "ratio": run.windows_per_s / best_windows_per_s,
        "predictor_adjacent_windows_per_s": adjacent,
        "ratio_to_predictor_adjacent": run.windows_per_s / adjacent,
    }


def latency(
    bootstrap: str,
    predictor: Any,
    model: str,
    capacity_windows_per_s: float,
    duration_s: float,
    mode: str,
    max_batch: int,
) -> dict[str, Any]:
    """(5)/(8) a paced producer at 50 % of `capacity`, hop 16; worker and visible latency."""
    devices = max(1, round(0.5 * capacity_windows_per_s * INFERENCE_HOP / 100.0))
    topic = harness.new_topic(bootstrap, f"live-{mode}")
    config = worker_config(
        bootstrap,
        topic,
        model,
        f"windows.hop={INFERENCE_HOP}",
        f'delivery.mode="{mode}"',
        f"batching.max_batch={max_batch}",
    )
    worker = start_worker(config, predictor, 10**12, 10**12)
    try:
        wait_ready(worker)
        isolation = "read_committed" if mode == "exactly-once" else "read_uncommitted"
        started = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.loadgen",
                "--bootstrap",
                bootstrap,
                "--input",
                topic,
                "--output",
                config.kafka.output_topic,
                "--devices",
                str(devices),
                "--duration-s",
                str(duration_s),
                "--isolation",
                isolation,
            ],
            check=True,
            capture_output=True,
            cwd=harness.REPO,
            timeout=duration_s + 120,
        )
        seconds = time.perf_counter() - started
    finally:
        stop_worker(worker)
    generated = orjson.loads(out.stdout.decode().strip().splitlines()[-1])
    run = summarize(worker, seconds)
    batch_s = run.inference_s / run.batches if run.batches else 0.0
    return {
        "devices_at_100hz": devices,
        "offered_windows_per_s": devices * 100.0 / INFERENCE_HOP,
        "windows": run.windows,
        "mean_batch": run.mean_batch,
        "mean_batch_inference_ms": batch_s * 1000,
        "latency_p50_ms": run.latency_s[0] * 1000,
        "latency_p99_ms": run.latency_s[1] * 1000,
        "latency_max_ms": run.latency_s[2] * 1000,
        "visible_events": generated["events"],
        "visible_latency_p50_ms": generated["visible_latency_ms"][0],
        "visible_latency_p99_ms": generated["visible_latency_ms"][1],
        "visible_latency_max_ms": generated["visible_latency_ms"][2],
        "max_wait_ms": config.batching.max_wait_ms,
    }


def backfill(
    bootstrap: str,
    predictor: Any,
    model: str,
    topic: str,
    workload: harness.Workload,
    mode: str,
    attempt: int = 0,
) -> dict[str, Any]:
    """(7)/(8) the default config (hop = length) consuming a pre-filled topic from the start."""
    length = predictor.manifest.window_length
    per_device = workload.samples // workload.devices
    windows = expected_windows(per_device, workload.devices, length, length)
    config = worker_config(
        bootstrap,
        topic,
        model,
        f'delivery.mode="{mode}"',
        f'kafka.group_id="{topic}.{mode}.{attempt}"',
    )
    run = run_worker(config, predictor, workload.samples, windows)
    return {
        "devices_at_100hz": workload.devices,
        "samples": workload.samples,
        "windows": run.windows,
        "samples_per_s": run.samples_per_s,
        "windows_per_s": run.windows_per_s,
        "real_time_multiple": run.samples_per_s / (workload.devices * 100.0),
        "inference_share": run.inference_share,
    }


_THROUGHPUT = re.compile(r"throughput\s+([\d,.]+) samples/s, ([\d,.]+) windows/s")


def backfill_best_of(
    bootstrap: str,
    predictor: Any,
    model: str,
    topic: str,
    workload: harness.Workload,
    attempts: int,
) -> dict[str, Any]:
    """(7)/(8) both delivery modes alternated `attempts` times (fresh groups), best of each."""
    best: dict[str, Any] = {}
    for attempt in range(attempts):
        for mode in ("at-least-once", "exactly-once"):
            run = backfill(bootstrap, predictor, model, topic, workload, mode, attempt)
            key = mode.replace("-", "_")
            if key not in best or run["samples_per_s"] > best[key]["samples_per_s"]:
                best[key] = run | {"attempts": attempts}
    return best


def replay(
    bootstrap: str,
    model: str,
    runtime: str,
    topic: str,
    hop: int,
    device: str = "cpu",
    threads: int = 2,
) -> dict[str, Any]:
    """(9) `sensorstream replay --from earliest` over a pre-filled topic, in a child process."""
    command = [
        sys.executable,
        "-m",
        "stream.cli",
        "--log-level",
        "WARNING",
        "replay",
        "--from",
        "earliest",
        "--topics",
        topic,
    ]
    for item in (
        f'kafka.bootstrap_servers="{bootstrap}"',
        f'model.path="{model}"',
        f'model.runtime="{runtime}"',
        f"windows.hop={hop}",
        f'model.device="{device}"',
        f"model.threads={threads}",
        "metrics.port=0",
    ):
        command += ["--set", item]
    out = subprocess.run(command, check=True, capture_output=True, cwd=harness.REPO, timeout=600)
    found = _THROUGHPUT.search(out.stdout.decode())
    if found is None:
        raise RuntimeError(
            f"no throughput line in the replay summary: {out.stdout.decode()[-400:]}"
        )
    return {
        "samples_per_s": float(found.group(1).replace(",", "")),
        "windows_per_s": float(found.group(2).replace(",", "")),
        "hop": hop,
    }


def memory(devices: tuple[int, ...]) -> dict[str, Any]:
    """(6) window state per active device, one fresh process per size."""
    found: dict[str, Any] = {}
    for count in devices:
        out = subprocess.run(
            [sys.executable, "-m", "bench.memory_probe", "--devices", str(count)],
            check=True,
            capture_output=True,
            cwd=harness.REPO,
            timeout=600,
        )
        probe = orjson.loads(out.stdout.decode().strip().splitlines()[-1])
        found[str(count)] = {
            "bytes_per_device": probe["bytes_per_device"],
            "rss_delta_mb": (probe["rss_after"] - probe["rss_before"]) / 1e6,
            "ratio_to_payload": probe["bytes_per_device"] / probe["payload_bytes"],
        }
    return found
