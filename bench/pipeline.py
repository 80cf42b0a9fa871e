"""The worker itself, in this process, on a pre-filled topic: how fast it gets through it.

A run is timed from the first poll that returned records to the step at which the
worker had decoded every sample and emitted every expected window, so the group
join before the first record does not count against it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from stream.config.loading import load_config
from stream.config.model_checks import check_against_model
from stream.config.schema import Config
from stream.core.worker import Worker
from stream.kafka.topics import ensure_topics
from timesnet.batch_predictor import BatchPredictor

log = logging.getLogger(__name__)


def worker_config(bootstrap: str, input_topic: str, model: str, *extra: str) -> Config:
    """A validated config pointing a worker at `input_topic` with fresh output topics."""
    overrides = [
        f'kafka.bootstrap_servers="{bootstrap}"',
        f'kafka.input_topics=["{input_topic}"]',
        f'kafka.output_topic="{input_topic}.events"',
        f'kafka.dead_letter_topic="{input_topic}.dlq"',
        f'kafka.alerts_topic="{input_topic}.alerts"',
        f'kafka.group_id="{input_topic}.group"',
        f'model.path="{model}"',
        "metrics.port=0",
        *extra,
    ]
    return load_config(None, overrides, environ={})


def expected_windows(samples_per_device: int, devices: int, length: int, hop: int) -> int:
    """Windows a gap-free stream of `samples_per_device` per device yields."""
    if samples_per_device < length:
        return 0
    return devices * ((samples_per_device - length) // hop + 1)


class TimedWorker(Worker):
    """The worker, noting when its first records arrived and when the target was reached."""

    def __init__(
        self, config: Config, predictor: BatchPredictor, samples: int, windows: int
    ) -> None:
        super().__init__(config, predictor)
        self.target_samples = samples
        self.target_windows = windows
        self.first_s: float | None = None
        self.done_s: float | None = None
        self.thread: threading.Thread | None = None

    def step(self) -> None:
        """One pass of the loop, timed from the start of the pass that got the first records."""
        started = time.perf_counter()
        super().step()
        now = time.perf_counter()
        if self.first_s is None and self.stats.records:
            self.first_s = started
        if (
            self.done_s is None
            and self.stats.samples >= self.target_samples
            and self.stats.windows >= self.target_windows
        ):
            self.done_s = now
            self.request_stop()


@dataclass(frozen=True)
class PipelineRun:
    """What one timed worker run did."""

    records: int
    samples: int
    windows: int
    batches: int
    seconds: float
    inference_s: float
    latency_s: tuple[float, float, float]  # p50, p99, max

    @property
    def samples_per_s(self) -> float:
        """Samples decoded per second."""
        return self.samples / self.seconds

    @property
    def records_per_s(self) -> float:
        """Records consumed per second."""
        return self.records / self.seconds

    @property
    def windows_per_s(self) -> float:
        """Windows classified and produced per second."""
        return self.windows / self.seconds

    @property
    def inference_share(self) -> float:
        """Part of the run spent inside the predictor."""
        return self.inference_s / self.seconds

    @property
    def mean_batch(self) -> float:
        """Average windows per predictor call."""
        return self.windows / self.batches if self.batches else 0.0


def start_worker(
    config: Config, predictor: BatchPredictor, samples: int, windows: int
) -> TimedWorker:
    """A TimedWorker with its topics ensured, running on its own thread (`worker.thread`)."""
    manifest = predictor.manifest
    check_against_model(config, manifest.window_length, manifest.channels)
    ensure_topics(config.kafka)
    worker = TimedWorker(config, predictor, samples, windows)
    worker.thread = threading.Thread(target=worker.run, name="bench-worker", daemon=True)
    worker.thread.start()
    return worker


def wait_ready(worker: Worker, timeout_s: float = 60.0) -> None:
    """Block until the worker has its partitions and polls."""
    deadline = time.monotonic() + timeout_s
    while not worker.ready()[0]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker not ready after {timeout_s:.0f} s: {worker.ready()[1]}")
        time.sleep(0.05)


def stop_worker(worker: TimedWorker) -> None:
    """Ask the worker to stop and wait for its drain."""
    worker.request_stop()
    worker.thread.join(60)


def summarize(worker: TimedWorker, seconds: float) -> PipelineRun:
    """The worker's counts over `seconds`."""
    stats = worker.stats
    p50, p99, worst = stats.latency_quantiles_s()
    return PipelineRun(
        stats.records,
        stats.samples,
        stats.windows,
        stats.batches,
        seconds,
        stats.inference_s,
        (p50, p99, worst),
    )


class NoRecords(RuntimeError):
    """The worker read no record before its timeout."""


def with_group(config: Config, group_id: str) -> Config:
    """`config` with another consumer group (and so another changelog and transactional id)."""
    return config.model_copy(
        update={"kafka": config.kafka.model_copy(update={"group_id": group_id})}
    )


def run_worker(
    config: Config, predictor: BatchPredictor, samples: int, windows: int, timeout_s: float = 300.0
) -> PipelineRun:
    """Run a worker until it decoded `samples` and emitted `windows`, and time it."""
    worker = start_worker(config, predictor, samples, windows)
    deadline = time.monotonic() + timeout_s
    while worker.thread.is_alive() and time.monotonic() < deadline:
        worker.thread.join(0.5)
    if worker.thread.is_alive():
        stop_worker(worker)
    stats = worker.stats
    if worker.first_s is None:
        raise NoRecords(f"worker read no record within {timeout_s:.0f} s")
    if worker.done_s is None:
        raise RuntimeError(
            f"worker did not finish in {timeout_s:.0f} s: samples {stats.samples}/{samples}, "
            f"windows {stats.windows}/{windows}"
        )
    return summarize(worker, worker.done_s - worker.first_s)
