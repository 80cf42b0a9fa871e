"""The model the worker serves now, and the ones a reload retired that still have work.

A reload swaps the model between batches: batches submitted before the swap finish on
the old predictor, everything submitted after goes to the new one. The old one is
closed once none of its batches is still at the predictor thread.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

from timesnet.batch_predictor import BatchPredictor
from timesnet.manifest import ModelManifest

if TYPE_CHECKING:
    from stream.core.metrics import WorkerMetrics
    from stream.core.model_reload import ModelReloader

log = logging.getLogger(__name__)


class ServedModel:
    """The current predictor, and in-flight counts per predictor to close retired ones."""

    def __init__(self, predictor: BatchPredictor, owned: bool) -> None:
        self._current = predictor
        self._in_flight: Counter[int] = Counter()  # id(predictor) -> batches at the thread
        self._retired: list[BatchPredictor] = []
        # what this worker loaded is closed by it; a predictor handed in is its caller's
        self._owned: set[int] = {id(predictor)} if owned else set()

    @property
    def current(self) -> BatchPredictor:
        """What new batches go to."""
        return self._current

    def submitted(self, predictor: BatchPredictor) -> None:
        """A batch went to `predictor`."""
        self._in_flight[id(predictor)] += 1

    def returned(self, predictor: BatchPredictor) -> None:
        """A batch of `predictor` came back (or was dropped); close it if it is retired and idle."""
        self._in_flight[id(predictor)] -= 1
        if self._in_flight[id(predictor)] <= 0:
            del self._in_flight[id(predictor)]
        self._close_idle()

    def swap(self, predictor: BatchPredictor) -> BatchPredictor:
        """Serve `predictor` (loaded by the worker) from the next batch on; returns the old one."""
        self._owned.add(id(predictor))
        old, self._current = self._current, predictor
        self._retired.append(old)
        self._close_idle()
        return old

    @property
    def retired(self) -> int:
        """Replaced predictors still finishing batches."""
        return len(self._retired)

    def close(self) -> None:
        """Close every predictor it owns (the worker is stopping; nothing is in flight)."""
        for predictor in [*self._retired, self._current]:
            self._close(predictor)
        self._retired.clear()

    def _close_idle(self) -> None:
        idle = [p for p in self._retired if not self._in_flight[id(p)]]
        for predictor in idle:
            self._retired.remove(predictor)
            self._close(predictor)

    def _close(self, predictor: BatchPredictor) -> None:
        if id(predictor) in self._owned:
            self._owned.discard(id(predictor))
            _close(predictor)


def _close(predictor: BatchPredictor) -> None:
    try:
        predictor.close()
    except Exception as exc:  # a model that fails to close must not stop the worker
        log.warning("closing model=%s failed: %s", predictor.manifest.version, exc)


def swap_primary(models: ServedModel, reloader: ModelReloader, metrics: WorkerMetrics) -> bool:
    """Serve the model `reloader` loaded, if one waits; True if the served model changed."""
    new = reloader.take()
    if new is None:
        return False
    old = models.swap(new)
    metrics.model_reloads.labels("ok").inc()
    log.info(
        "model reloaded name=%s version=%s -> %s (batches in flight finish on %s)",
        new.manifest.name,
        old.manifest.version,
        new.manifest.version,
        old.manifest.version,
    )
    return True


def export_model_info(metrics: WorkerMetrics, manifest: ModelManifest, device: str) -> None:
    """sensorstream_model_info shows the served model only (one series, value 1)."""
    metrics.model_info.clear()
    metrics.model_info.labels(manifest.name, manifest.version, manifest.architecture, device).set(1)
