"""A shadow model: a candidate that classifies the primary's batches without ever slowing them.

After the primary's events of a batch are produced, the same rows are offered to the
shadow's own predictor thread with the labels the primary gave them. The offer never
waits: when the shadow is `max_queued_batches` behind, the batch is skipped for it
and counted (`sensorstream_shadow_skipped_total`). Finished shadow batches are
collected by the worker's loop and published to the shadow topic as events with
`"shadow": true`, and their labels are compared with the primary's.

A shadow's failure is its own: a batch it cannot classify is skipped and logged,
and the primary goes on. Shadow events hold no offsets: they are best effort, and a
crash can lose the shadow events of windows the primary already committed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from stream.core.columns import WindowRows
from stream.core.inference import first_line
from stream.core.served_model import ServedModel
from timesnet.batch_predictor import BatchPredictor
from timesnet.manifest import ModelManifest

if TYPE_CHECKING:
    from stream.core.metrics import WorkerMetrics
    from stream.core.model_reload import ModelReloader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowBatch:
    """A batch the shadow classified, with what the primary said of the same windows."""

    rows: WindowRows
    primary_labels: npt.NDArray[np.object_]  # [W] labels the primary's events carry
    probabilities: npt.NDArray[np.float32]  # [W, K'] the shadow's
    predictor: BatchPredictor  # the shadow model that classified them


@dataclass(frozen=True)
class _Offered:
    predictor: BatchPredictor
    rows: WindowRows
    primary_labels: npt.NDArray[np.object_]


class ShadowRunner:
    """The shadow's predictor thread, fed without waiting, collected by the worker's loop."""

    def __init__(self, predictor: BatchPredictor, max_queued_batches: int) -> None:
        self.models = ServedModel(predictor, owned=True)
        self.skipped = 0  # windows the shadow did not classify (behind, or failed)
        self._inbox: queue.Queue[_Offered | None] = queue.Queue(maxsize=max_queued_batches)
        self._outbox: queue.Queue[ShadowBatch | _Offered] = queue.Queue()
        self._pending = 0  # offered and not yet collected
        self._thread = threading.Thread(target=self._loop, name="shadow", daemon=True)
        self._thread.start()

    @property
    def manifest(self) -> ModelManifest:
        """The shadow model's manifest."""
        return self.models.current.manifest

    def offer(self, rows: WindowRows, primary_labels: npt.NDArray[np.object_]) -> int:
        """Queue a produced batch for the shadow; returns the windows skipped (0 if queued)."""
        predictor = self.models.current
        try:
            self._inbox.put_nowait(_Offered(predictor, rows, primary_labels))
        except queue.Full:
            self.skipped += len(rows)
            return len(rows)
        self.models.submitted(predictor)
        self._pending += 1
        return 0

    def collect(self) -> tuple[list[ShadowBatch], int]:
        """Finished shadow batches, and the windows of batches the shadow failed on."""
        done: list[ShadowBatch] = []
        failed = 0
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                break
            self._pending -= 1
            self.models.returned(item.predictor)
            if isinstance(item, ShadowBatch):
                done.append(item)
            else:  # the shadow raised on it: skipped, like a batch it was too late for
                failed += len(item.rows)
        self.skipped += failed
        return done, failed

    def wait_idle(self, deadline_s: float) -> bool:
        """Until every offered batch came back (shutdown); True if they did in time."""
        end = time.monotonic() + deadline_s
        while self._pending - self._outbox.qsize() > 0 and time.monotonic() < end:
            time.sleep(0.01)
        return self._pending - self._outbox.qsize() <= 0

    def swap(self, predictor: BatchPredictor) -> BatchPredictor:
        """A reloaded shadow model takes the batches offered from now on."""
        return self.models.swap(predictor)

    def close(self) -> None:
        """Stop the thread after what was offered, and close the shadow models."""
        try:
            self._inbox.put(None, timeout=30)
        except queue.Full:
            log.warning("shadow thread did not take the stop within 30 s")
        self._thread.join(timeout=30)
        self.models.close()

    def _loop(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            try:
                probabilities = item.predictor.predict_batch(item.rows.data)
            except Exception as exc:  # the shadow's failure must not touch the primary
                log.warning(
                    "shadow model=%s failed on %d windows: %s",
                    item.predictor.manifest.version,
                    len(item.rows),
                    first_line(exc),
                )
                self._outbox.put(item)
                continue
            self._outbox.put(
                ShadowBatch(item.rows, item.primary_labels, probabilities, item.predictor)
            )


def swap_shadow(shadow: ShadowRunner, reloader: ModelReloader, metrics: WorkerMetrics) -> None:
    """The shadow reloads like the primary: offered batches from now on go to the new one."""
    new = reloader.take()
    if new is None:
        return
    old = shadow.swap(new)
    metrics.model_reloads.labels("ok").inc()
    log.info("shadow model reloaded version=%s -> %s", old.manifest.version, new.manifest.version)
