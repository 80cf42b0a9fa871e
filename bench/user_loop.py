"""`python -m bench.user_loop [--quick] [--json OUT]`: the worker against what a user would write.

What a user would write instead of the worker: a plain kafka-python loop that keeps a
numpy buffer per device, cuts each window when it is complete, classifies it alone
(batch 1) and sends one JSON event, the PaddleX way: Paddle Inference through
`timesnet.predictor`'s Paddle runtime (`plain_loop` below is that loop, whole). The
worker and that loop read the same topic (16 devices sending 10-sample JSON chunks,
as the demo does) and classify with the same model files; each run reads the topic
from its start with a fresh group and is timed from its first records to its last
event. The loop runs twice, on Paddle Inference and on the worker's own runtime, so
the printed ratios split the worker's advantage into the runtime's share and the
batching's. Hops: the window length (each sample in one window) and 32. The three
take turns, twice, best of each.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import harness, runtimes
from bench.pipeline import expected_windows, run_worker, worker_config

log = logging.getLogger(__name__)

DEVICES = 16
CHUNK = 10  # samples per record, as the demo's devices send them
ATTEMPTS = 2
TARGET = 3.0  # the worker >= 3x the PaddleX-way loop


@dataclass(frozen=True)
class LoopRun:
    """What one pass of the plain loop did."""

    windows: int
    seconds: float

    @property
    def windows_per_s(self) -> float:
        """Windows classified and sent per second."""
        return self.windows / self.seconds


def plain_loop(
    bootstrap: str, topic: str, predictor: Any, hop: int, expected: int, timeout_s: float = 600.0
) -> LoopRun:
    """Consume `topic` from its start, classify every window alone, send each event.

    This is the loop a user would write with kafka-python and numpy: a buffer of
    samples per device, a window cut whenever `length` samples are there, one
    prediction per window. It stops once `expected` windows were sent.
    """
    from kafka import KafkaConsumer, KafkaProducer

    length, channels = predictor.manifest.window_length, predictor.manifest.channels
    labels = predictor.manifest.labels
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"plain-loop-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    buffers: dict[str, np.ndarray] = {}  # device -> samples not yet past, [n, C]
    starts: dict[str, int] = {}  # device -> timestamp of its buffer's first sample
    sent, first_s = 0, None
    try:
        for record in consumer:
            first_s = first_s or time.perf_counter()
            message = json.loads(record.value)
            device = message["device_id"]
            values = np.asarray(message["values"], dtype=np.float32).reshape(-1, channels)
            if device not in buffers:
                buffers[device] = np.empty((0, channels), dtype=np.float32)
                starts[device] = message["ts"]
            buffer = np.concatenate([buffers[device], values])
            while len(buffer) >= length:
                probabilities = predictor.predict_batch(buffer[None, :length])[0]
                best = int(probabilities.argmax())
                event = {
                    "device_id": device,
                    "window_start_ts": starts[device],
                    "window_end_ts": starts[device] + (length - 1) * message["interval_ms"],
                    "label": labels[best],
                    "score": float(probabilities[best]),
                    "probabilities": probabilities.tolist(),
                }
                producer.send(
                    f"{topic}.plain", key=device.encode(), value=json.dumps(event).encode()
                )
                sent += 1
                buffer = buffer[hop:]
                starts[device] += hop * message["interval_ms"]
            buffers[device] = buffer
            if sent >= expected:
                break
        producer.flush()
    finally:
        consumer.close()
        producer.close()
    if first_s is None or sent < expected:
        raise RuntimeError(f"the plain loop sent {sent} of {expected} windows from {topic}")
    return LoopRun(sent, time.perf_counter() - first_s)


def fill(bootstrap: str, samples_per_device: int) -> tuple[str, harness.Workload]:
    """A new topic of DEVICES devices sending CHUNK-sample JSON chunks, round robin."""
    workload = harness.chunk_workload(
        harness.uwave_series(), DEVICES, samples_per_device // CHUNK, chunk=CHUNK
    )
    topic = harness.new_topic(bootstrap, f"userloop{samples_per_device}")
    harness.fill_topic(bootstrap, topic, workload.records)
    return topic, workload


def compare_at_hop(
    bootstrap: str,
    predictors: dict[str, Any],
    model: str,
    hop: int,
    samples_per_device: int,
    attempts: int = ATTEMPTS,
) -> dict[str, Any]:
    """The worker and the loop on each runtime over one topic, alternated, best of each."""
    topic, workload = fill(bootstrap, samples_per_device)
    worker_predictor = predictors["worker"]
    length = worker_predictor.manifest.window_length
    windows = expected_windows(samples_per_device, DEVICES, length, hop)
    config = worker_config(bootstrap, topic, model, f"windows.hop={hop}")
    best: dict[str, float] = {}
    for attempt in range(attempts):
        for name, predictor in predictors.items():
            if name == "worker":
                group = f"{config.kafka.group_id}.{attempt}"
                attempt_config = config.model_copy(
                    update={"kafka": config.kafka.model_copy(update={"group_id": group})}
                )
                rate = run_worker(
                    attempt_config, predictor, workload.samples, windows
                ).windows_per_s
            else:
                rate = plain_loop(bootstrap, topic, predictor, hop, windows).windows_per_s
            log.info("hop=%d attempt=%d %s windows_per_s=%.1f", hop, attempt, name, rate)
            best[name] = max(best.get(name, 0.0), rate)
    found: dict[str, Any] = {
        "hop": hop,
        "windows": windows,
        "windows_per_s": best,
        "worker_over_paddlex_loop": best["worker"] / best["loop/paddle"],
    }
    default = f"loop/{runtimes.default_runtime()}"
    if default in best and default != "loop/paddle":
        found["worker_over_loop_same_runtime"] = best["worker"] / best[default]
        found["runtime_gain_batch1"] = best[default] / best["loop/paddle"]
    return found


def measure(
    bootstrap: str, threads: int, quick: bool, device: str = "cpu", runtime: str | None = None
) -> dict[str, Any]:
    """Both hops; the worker on `runtime` (default: the product's), the loop on Paddle and on it."""
    model = harness.model_dir()
    worker_runtime = runtime or runtimes.default_runtime()
    predictors = {"worker": runtimes.load(model, worker_runtime, device, threads)}
    predictors["loop/paddle"] = runtimes.load(model, "paddle", device, threads)
    if worker_runtime != "paddle":
        predictors[f"loop/{worker_runtime}"] = runtimes.load(model, worker_runtime, device, threads)
    length = predictors["worker"].manifest.window_length
    cases = 2 if quick else 20  # per device: hop = length gives one window per case
    results: dict[str, Any] = {
        "model": model.name,
        "version": predictors["worker"].manifest.version,
        "worker_runtime": worker_runtime,
        "devices": DEVICES,
        "chunk_samples": CHUNK,
        "target": TARGET,
        "hops": {},
    }
    try:
        for hop, samples in ((length, cases * length), (32, length + (3 if quick else 40) * 32)):
            samples = -(-samples // CHUNK) * CHUNK
            results["hops"][str(hop)] = compare_at_hop(
                bootstrap, predictors, str(model), hop, samples, 1 if quick else ATTEMPTS
            )
    finally:
        for predictor in predictors.values():
            predictor.close()
    return results


def table(results: dict[str, Any]) -> str:
    """Markdown: windows/s of each, the ratios, and whether the target holds."""
    runtime = results["worker_runtime"]
    lines = [
        f"| hop | worker ({runtime}, batched) | plain loop, Paddle Inference, batch 1 "
        f"| plain loop, {runtime}, batch 1 | worker / PaddleX-way loop | worker / loop on "
        f"{runtime} | target >= {results['target']:.0f}x |",
        "|---|---|---|---|---|---|---|",
    ]
    for hop, row in results["hops"].items():
        rates = row["windows_per_s"]
        same = row.get("worker_over_loop_same_runtime")
        ratio = row["worker_over_paddlex_loop"]
        holds = "yes" if ratio >= results["target"] else "NO"
        lines.append(
            f"| {hop} | {rates['worker']:,.1f} | {rates['loop/paddle']:,.1f} "
            f"| {rates.get(f'loop/{runtime}', float('nan')):,.1f} | {ratio:.2f}x "
            f"| {f'{same:.2f}x' if same else 'n/a'} | {holds} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start (or use) a broker, compare, print the table, write the JSON."""
    from timesnet.native_stdout import native_stdout_to_stderr
    from timesnet.paddle_warnings import hide_ccache_warning

    parser = argparse.ArgumentParser(prog="python -m bench.user_loop", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller topics")
    parser.add_argument("--threads", type=int, default=2, help="predictor CPU threads")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    hide_ccache_warning()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    with harness.broker() as bootstrap, native_stdout_to_stderr():
        results = measure(bootstrap, args.threads, args.quick)
    results["machine"] = harness.machine()
    print(table(results))
    harness.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
