"""Plain in-process numbers about a run, for the demo's summary and the benchmarks."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

LATENCY_SAMPLES_KEPT = 200_000


@dataclass
class WorkerStats:
    """Counts and recent latencies of one worker."""

    records: int = 0
    samples: int = 0
    windows: int = 0
    batches: int = 0
    inference_s: float = 0.0
    dead_letters: Counter[str] = field(default_factory=Counter)
    events_by_label: Counter[str] = field(default_factory=Counter)
    _latencies: deque[npt.NDArray[np.float64]] = field(default_factory=deque)
    _latency_count: int = 0

    def count_dead_letter(self, reason: str) -> None:
        """One more dead letter for `reason`."""
        self.dead_letters[reason] += 1

    def count_event(self, label: str, count: int = 1) -> None:
        """`count` more events labelled `label`."""
        self.events_by_label[label] += count

    def record_batch(
        self, windows: int, inference_s: float, latencies_s: npt.NDArray[np.float64]
    ) -> None:
        """A produced batch: its size, predictor time and per-window latencies."""
        self.windows += windows
        self.batches += 1
        self.inference_s += inference_s
        self._latencies.append(np.asarray(latencies_s, dtype=np.float64))
        self._latency_count += len(latencies_s)
        while self._latency_count - len(self._latencies[0]) > LATENCY_SAMPLES_KEPT:
            self._latency_count -= len(self._latencies.popleft())

    def latency_quantiles_s(self, quantiles: tuple[float, ...] = (0.5, 0.99, 1.0)) -> list[float]:
        """Quantiles of the recent end-to-end latencies (NaN when none yet)."""
        if not self._latencies:
            return [float("nan")] * len(quantiles)
        values = np.concatenate(list(self._latencies))
        return [float(q) for q in np.quantile(values, quantiles)]
