"""What drift monitoring costs the worker thread: timed inside ingest runs, and per poll.

1. Ingest (the bench's workloads on a real broker, 4 devices, hop = a device's whole
   stream so that inference stays small): binary chunk records of 100 samples and
   single-sample JSON records. The worker's own drift calls are timed from inside
   it (`TimedDrift` wraps its monitor); their time over the run's is the share of
   the worker thread they take. `[drift] interval_s` is 1 s there, ten times the
   default's updates, so that a run of a few seconds includes some.
2. Per call, without Kafka: `observe_samples` on polls of the sizes the worker reads
   (2,000 binary chunks = 200,000 samples; 2,000 single samples), `observe_classes`
   on a batch of 32, and `update` of a full sample ring, against the worker's time
   for the same poll at the given ingest rates (BENCHMARKS.md's latest table).

    python -m bench.drift_bench [--chunks-per-device 15000] [--singles-per-device 25000]
                                [--attempts 2] [--micro-only] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry

from bench import harness
from bench.pipeline import TimedWorker, summarize, with_group, worker_config
from stream.config.model_checks import check_against_model
from stream.config.schema import DriftConfig
from stream.core.allocator import tune_allocator
from stream.core.drift import DriftMonitor, NoDrift
from stream.core.metrics import WorkerMetrics
from stream.kafka.topics import ensure_topics

# The worker's ingest rates in BENCHMARKS.md's latest table (samples/s), for part 2.
BINARY_SAMPLES_PER_S = 15_369_436
SINGLE_SAMPLES_PER_S = 175_098
POLL_RECORDS = 2000  # [kafka] max_poll_records


class TimedDrift:
    """The worker's drift monitor, adding up the time of every call."""

    def __init__(self, inner: DriftMonitor | NoDrift) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls: Counter[str] = Counter()
        self.by_call_s: dict[str, float] = {}

    def _timed(self, name: str, call: Callable[[], None]) -> None:
        started = time.perf_counter()
        call()
        spent = time.perf_counter() - started
        self.seconds += spent
        self.calls[name] += 1
        self.by_call_s[name] = self.by_call_s.get(name, 0.0) + spent

    def observe_samples(self, values: npt.NDArray[np.float32]) -> None:
        """Timed DriftMonitor.observe_samples."""
        self._timed("observe_samples", lambda: self.inner.observe_samples(values))

    def observe_classes(self, class_ids: npt.NDArray[np.integer]) -> None:
        """Timed DriftMonitor.observe_classes."""
        self._timed("observe_classes", lambda: self.inner.observe_classes(class_ids))

    def maybe_update(self) -> None:
        """Timed DriftMonitor.maybe_update."""
        self._timed("maybe_update", self.inner.maybe_update)


def ingest_share(
    bootstrap: str, predictor: Any, model: str, workload: harness.Workload, attempts: int
) -> dict[str, Any]:
    """The drift calls' share of `attempts` worker runs over one topic holding `workload`."""
    topic = harness.new_topic(bootstrap, workload.name)
    harness.fill_topic(bootstrap, topic, workload.records)
    samples, devices = workload.samples, workload.devices
    config = worker_config(
        bootstrap, topic, model, f"windows.hop={samples // devices}", "drift.interval_s=1.0"
    )
    window = (predictor.manifest.window_length, predictor.manifest.channels)
    for batch in range(1, devices + 1):  # oneDNN's set-up per batch shape: not per ingest
        predictor.predict_batch(np.zeros((batch, *window), dtype=np.float32))
    runs = []
    for attempt in range(attempts):
        gc.collect()
        run_config = with_group(config, f"{config.kafka.group_id}.{attempt}")
        check_against_model(run_config, *window)
        ensure_topics(run_config.kafka)
        worker = TimedWorker(run_config, predictor, samples, devices)
        timed = TimedDrift(worker.drift)
        worker.drift = timed  # type: ignore[assignment]
        thread = threading.Thread(target=worker.run, name="bench-worker", daemon=True)
        thread.start()
        thread.join(300)
        if worker.first_s is None or worker.done_s is None:
            worker.request_stop()
            raise RuntimeError(f"worker did not finish {workload.name} in 300 s")
        run = summarize(worker, worker.done_s - worker.first_s)
        runs.append(
            {
                "seconds": run.seconds,
                "records": run.records,
                "samples_per_s": run.samples_per_s,
                "drift_s": timed.seconds,
                "share": timed.seconds / run.seconds,
                "calls": dict(timed.calls),
                "by_call_s": dict(timed.by_call_s),
                "per_poll_us": timed.by_call_s.get("observe_samples", 0.0)
                / max(timed.calls["observe_samples"], 1)
                * 1e6,
            }
        )
    return {"workload": workload.name, "records": len(workload.records), "runs": runs}


def _median_s(call: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def micro(model: str) -> dict[str, Any]:
    """Per-call costs at realistic sizes against the worker's time for the same poll."""
    from timesnet.manifest import load_manifest

    stats = load_manifest(model).training_stats
    if stats is None:
        raise SystemExit(f"{model} has no training statistics: run sensorstream add-stats")
    series = harness.uwave_series().astype(np.float32)  # [100800, 3]
    monitor = DriftMonitor(stats, DriftConfig(), WorkerMetrics(CollectorRegistry()))
    binary_poll = np.ascontiguousarray(np.tile(series, (2, 1))[: POLL_RECORDS * 100])
    single_poll = np.ascontiguousarray(series[:POLL_RECORDS])
    results: dict[str, Any] = {
        "stride": monitor.stride,
        "ring_rows": monitor._samples.capacity,
    }
    for name, poll, rate in (
        ("binary", binary_poll, BINARY_SAMPLES_PER_S),
        ("single", single_poll, SINGLE_SAMPLES_PER_S),
    ):
        spent = _median_s(partial(monitor.observe_samples, poll), 300)
        worker_s = len(poll) / rate
        results[name] = {
            "poll_samples": len(poll),
            "observe_us": spent * 1e6,
            "worker_poll_ms": worker_s * 1e3,
            "share": spent / worker_s,
        }
    classes = np.arange(32) % len(stats.label_proportions)
    results["observe_classes_us"] = _median_s(lambda: monitor.observe_classes(classes), 300) * 1e6
    for _ in range(40):
        monitor.observe_classes(classes)
    update_s = _median_s(monitor.update, 30)
    results["update_ms"] = update_s * 1e3
    results["update_share_at_default_interval"] = update_s / DriftConfig().interval_s
    return results


def main(argv: list[str] | None = None) -> None:
    """Run both parts and print their figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.drift_bench", description=__doc__)
    parser.add_argument("--chunks-per-device", type=int, default=15_000)
    parser.add_argument("--singles-per-device", type=int, default=25_000)
    parser.add_argument("--attempts", type=int, default=2)
    parser.add_argument("--micro-only", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # reconnect chatter while topics settle
    tune_allocator()  # the worker's malloc settings, as the bench runs them
    model = str(harness.model_dir())
    results: dict[str, Any] = {"model": model, "micro": micro(model)}
    m = results["micro"]
    print(f"sample ring {m['ring_rows']:,} rows, stride {m['stride']} (window_samples 100,000)")
    for name in ("binary", "single"):
        r = m[name]
        print(
            f"observe_samples, {name} poll of {r['poll_samples']:,} samples: "
            f"{r['observe_us']:.1f} us = {r['share']:.3%} of the worker's "
            f"{r['worker_poll_ms']:.2f} ms for that poll"
        )
    print(f"observe_classes, batch of 32: {m['observe_classes_us']:.1f} us")
    print(
        f"update (full ring): {m['update_ms']:.2f} ms, every 10 s = "
        f"{m['update_share_at_default_interval']:.4%} of the thread"
    )
    if not args.micro_only:
        from timesnet.predictor import load_predictor

        predictor = load_predictor(model, threads=2)
        series: Any = harness.uwave_series()  # float64 at 4 decimals, as suite.py passes it
        workloads = (
            lambda: harness.binary_chunk_workload(series, 4, args.chunks_per_device),
            lambda: harness.single_workload(series, 4, args.singles_per_device),
        )
        results["ingest"] = []
        with harness.broker() as bootstrap:
            for make in workloads:
                found = ingest_share(bootstrap, predictor, model, make(), args.attempts)
                results["ingest"].append(found)
                for run in found["runs"]:
                    print(
                        f"ingest {found['workload']} ({found['records']:,} records): "
                        f"{run['samples_per_s']:,.0f} samples/s in {run['seconds']:.2f} s, "
                        f"drift calls {run['drift_s'] * 1e3:.1f} ms = {run['share']:.2%} "
                        f"({run['calls']}; observe_samples {run['per_poll_us']:.1f} us/poll)"
                    )
    harness.write_json(args.json, results)


if __name__ == "__main__":
    main()
