"""Windows/s of predictors at each batch size, best of rounds that alternate between them.

Alternating (round 1: every predictor, every batch; round 2: again ...) and keeping each
figure's best round means a burst of load from another process on a shared machine hits
every predictor alike instead of deciding a ratio.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)


def windows_per_s(predictor: Any, x: npt.NDArray[np.float32], batch: int, min_s: float) -> float:
    """Windows/s of predict_batch on batches of `batch` windows cut from x, for >= min_s."""
    batches = [
        np.resize(x[i : i + batch], (batch, *x.shape[1:])) for i in range(0, len(x), batch)
    ]  # wraps short tails so every call is full
    predictor.predict_batch(batches[0])  # first call at a new shape picks kernels, allocates
    done, started = 0, time.perf_counter()
    while True:
        for windows in batches:
            predictor.predict_batch(windows)
            done += batch
            elapsed = time.perf_counter() - started
            if elapsed >= min_s and done >= 2 * batch:
                return done / elapsed


def sweep(
    predictors: dict[str, Any],
    x: dict[str, npt.NDArray[np.float32]],
    batches: tuple[int, ...],
    rounds: int,
    min_s: float,
) -> dict[str, dict[int, float]]:
    """Best-of-rounds windows/s per predictor and batch; x[key] are the windows of predictor key."""
    best: dict[str, dict[int, float]] = {key: {} for key in predictors}
    for round_index in range(rounds):
        for key, predictor in predictors.items():
            for batch in batches:
                rate = windows_per_s(predictor, x[key], batch, min_s)
                best[key][batch] = max(rate, best[key].get(batch, 0.0))
                log.info(
                    "round=%d model=%s batch=%d windows_per_s=%.1f", round_index, key, batch, rate
                )
    return best
