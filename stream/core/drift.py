"""Input and label drift: the population stability index of recent data against training.

A model's manifest may carry its training statistics (timesnet/training_stats.py):
decile bins of each channel's raw training samples with their shares, and the
training label shares. The worker feeds a `DriftMonitor` every decoded sample
(all devices pooled) and the top class of every produced window, and asks it on
every loop pass to update; at most every `[drift] interval_s` it computes

* per channel, the PSI of the most recent `[drift] window_samples` samples'
  shares in the training bins -> ``sensorstream_input_drift_psi{channel}``;
* the PSI of the top classes of the last `[drift] window_events` windows (an
  abstained window counts under the class it would have had: training has no
  abstain class) -> ``sensorstream_label_drift_psi``.

PSI = sum over bins of (p - q) * ln(p / q), p the recent shares, q the training
ones, each share first raised to at least PSI_EPSILON: an empty bin would make
the logarithm infinite, and 1e-4 (the usual choice) keeps one empty decile bin
at ~0.69 while bins empty on both sides add nothing. Rules of thumb: < 0.1 no
real change, 0.1-0.25 some, > 0.25 a shift worth a look.

Cost: the samples are not all kept. The monitor takes a systematic sample, every
`stride`-th sample of the stream, into a ring of at most MAX_SAMPLED_VALUES values
sized so that it spans the last `window_samples` samples; a poll only copies the
(strided) rows that can still be in the ring, and the bins are counted only at an
update, with `np.searchsorted` against the stored edges (BENCHMARKS.md measures it).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from stream.config.schema import DriftConfig
from stream.core.metrics import WorkerMetrics
from timesnet.manifest import ModelManifest
from timesnet.training_stats import TrainingStats, bin_counts

log = logging.getLogger(__name__)

PSI_EPSILON = 1e-4
MAX_SAMPLED_VALUES = 32_768  # sampled rows x channels held for the input PSI
MIN_SAMPLED_ROWS = 1024  # so that many channels still get enough rows


def psi(
    observed_counts: npt.NDArray[np.integer], expected_shares: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """PSI over the last axis (bins) of counts [..., B] against shares [..., B] (module doc)."""
    counts = np.asarray(observed_counts, dtype=np.float64)
    totals = counts.sum(axis=-1, keepdims=True)
    observed = np.maximum(counts / np.maximum(totals, 1.0), PSI_EPSILON)
    expected = np.maximum(np.asarray(expected_shares, dtype=np.float64), PSI_EPSILON)
    return np.sum((observed - expected) * np.log(observed / expected), axis=-1)


class Ring:
    """The last `capacity` rows pushed (shape [capacity, *row_shape]), in no particular order."""

    def __init__(self, capacity: int, row_shape: tuple[int, ...], dtype: npt.DTypeLike) -> None:
        self.capacity = capacity
        self._rows = np.zeros((capacity, *row_shape), dtype=dtype)
        self._head = 0  # where the next row goes
        self._filled = 0

    def __len__(self) -> int:
        return self._filled

    def push(self, rows: npt.NDArray) -> None:
        """Keep `rows` [M, *row_shape], overwriting the oldest."""
        count = len(rows)
        if count >= self.capacity:
            self._rows[:] = rows[count - self.capacity :]
            self._head, self._filled = 0, self.capacity
            return
        end = self._head + count
        if end <= self.capacity:
            self._rows[self._head : end] = rows
        else:
            split = self.capacity - self._head
            self._rows[self._head :] = rows[:split]
            self._rows[: end - self.capacity] = rows[split:]
        self._head = end % self.capacity
        self._filled = min(self._filled + count, self.capacity)

    def rows(self) -> npt.NDArray:
        """The kept rows [len, *row_shape] (a view: read it before the next push)."""
        return self._rows[: self._filled]


class DriftMonitor:
    """Keeps a sample of recent inputs and classes; exports their PSI against training."""

    def __init__(
        self,
        stats: TrainingStats,
        config: DriftConfig,
        metrics: WorkerMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = stats
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self._edges = stats.edge_array()  # [C, E]
        self._shares = stats.proportion_array()  # [C, E + 1]
        self._label_shares = np.asarray(stats.label_proportions, dtype=np.float64)  # [K]
        channels = stats.channels
        ring_rows = min(
            config.window_samples, max(MIN_SAMPLED_ROWS, MAX_SAMPLED_VALUES // channels)
        )
        self.stride = math.ceil(config.window_samples / ring_rows)
        # a row of C float32 as one item: numpy copies those ~2x faster than C floats each
        self._row_item = np.dtype((np.void, 4 * channels))
        self._samples = Ring(math.ceil(config.window_samples / self.stride), (), self._row_item)
        self._classes = Ring(config.window_events, (), np.int16)
        self._seen = 0  # samples observed so far: where the stride's phase stands
        self._next_update_s = clock() + config.interval_s
        self._channel_names = [str(c) for c in range(channels)]

    def observe_samples(self, values: npt.NDArray[np.float32]) -> None:
        """Decoded samples [N, C] of one poll, all devices together."""
        count = len(values)
        if not count:
            return
        first = -self._seen % self.stride  # the stream's next multiple of the stride
        self._seen += count
        taken = values[first :: self.stride]  # [M, C] a view
        taken = taken[max(len(taken) - self._samples.capacity, 0) :]
        if taken.dtype != np.float32 or taken.strides[1] != 4:
            taken = np.ascontiguousarray(taken, dtype=np.float32)
        self._samples.push(taken.view(self._row_item).reshape(-1))

    def kept_samples(self) -> npt.NDArray[np.float32]:
        """The sampled rows [M, C] the input PSI is computed on (a view)."""
        channels = self._row_item.itemsize // 4
        return self._samples.rows().view(np.float32).reshape(len(self._samples), channels)

    def observe_classes(self, class_ids: npt.NDArray[np.integer]) -> None:
        """Top class ids [W] of produced windows."""
        if len(class_ids):
            self._classes.push(class_ids[max(len(class_ids) - self._classes.capacity, 0) :])

    def maybe_update(self) -> None:
        """Compute and export the PSIs if `interval_s` has passed since the last time."""
        now = self.clock()
        if now < self._next_update_s:
            return
        self._next_update_s = now + self.config.interval_s
        self.update()

    def update(self) -> None:
        """Compute and export the PSIs of what was kept (nothing kept: the gauge stays absent)."""
        input_psi, label_psi = self.input_psi(), self.label_psi()
        if input_psi is not None:
            gauge = self.metrics.show(self.metrics.input_drift_psi)
            for name, value in zip(self._channel_names, input_psi.tolist(), strict=True):
                gauge.labels(name).set(value)
        if label_psi is not None:
            self.metrics.show(self.metrics.label_drift_psi).set(label_psi)

    def input_psi(self) -> npt.NDArray[np.float64] | None:
        """PSI [C] of the kept samples per channel, None before any."""
        if not len(self._samples):
            return None
        return psi(bin_counts(self.kept_samples(), self._edges), self._shares)

    def label_psi(self) -> float | None:
        """PSI of the kept top classes, None before any."""
        if not len(self._classes):
            return None
        counts = np.bincount(self._classes.rows(), minlength=len(self._label_shares))
        return float(psi(counts, self._label_shares))


class NoDrift:
    """What a model without training statistics gets: every call does nothing."""

    def observe_samples(self, values: npt.NDArray[np.float32]) -> None:
        """Nothing to compare with."""

    def observe_classes(self, class_ids: npt.NDArray[np.integer]) -> None:
        """Nothing to compare with."""

    def maybe_update(self) -> None:
        """The drift gauges stay absent."""


def drift_monitor(
    config: DriftConfig, manifest: ModelManifest, metrics: WorkerMetrics
) -> DriftMonitor | NoDrift:
    """A monitor for `manifest`'s training statistics, or NoDrift (and one log line) without.

    Building one for another model (a model swap) first takes the gauges of the
    previous one off /metrics: they come back with the new model's first values.
    """
    metrics.hide(metrics.input_drift_psi)
    metrics.hide(metrics.label_drift_psi)
    if manifest.training_stats is None:
        log.info(
            "model=%s has no training statistics: no drift gauges; add them with "
            "`sensorstream add-stats --model DIR --data TRAIN.ts`",
            manifest.name,
        )
        return NoDrift()
    return DriftMonitor(manifest.training_stats, config, metrics)
