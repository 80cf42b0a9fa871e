"""Dynamic batching for request/response callers (the HTTP endpoint of `sensorstream serve`).

The worker's DynamicBatcher holds Kafka window rows and is driven by the poll
loop; HTTP requests instead arrive on many threads and each must wait for its own
answer. Here callers block in `classify` while one thread gathers their windows:
a batch leaves when it holds `max_batch` windows or when its oldest request has
waited `max_wait_ms`, and goes to the predictor as one call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from timesnet.batch_predictor import BatchPredictor

log = logging.getLogger(__name__)


@dataclass(eq=False)  # identity: `in` / `remove` on the queue must not compare arrays
class _Pending:
    """One caller's windows and the slot its answer lands in."""

    windows: npt.NDArray[np.float32]  # [b, L, C]
    enqueued_at_s: float  # monotonic
    done: threading.Event = field(default_factory=threading.Event)
    probabilities: npt.NDArray[np.float32] | None = None  # [b, K]
    error: BaseException | None = None


class RequestBatcher:
    """Thread-safe `classify(windows) -> probabilities` that batches concurrent callers.

    A request's windows are never split across batches; a request larger than
    `max_batch` goes alone. A predictor error fails only the requests of that batch.
    """

    def __init__(
        self,
        predictor: BatchPredictor,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        timeout_s: float = 30.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0 or timeout_s <= 0:
            raise ValueError("max_wait_ms must be >= 0 and timeout_s > 0")
        self.predictor = predictor
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.timeout_s = timeout_s
        self._queue: deque[_Pending] = deque()
        self._condition = threading.Condition()
        self._closed = False
        self._next_predictor: BatchPredictor | None = None  # a reload, taken between batches
        self._batches = 0
        self._thread = threading.Thread(target=self._loop, name="request-batcher", daemon=True)
        self._thread.start()

    @property
    def batches(self) -> int:
        """Predictor calls made so far."""
        return self._batches

    def classify(self, windows: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Raw windows [b, L, C] -> probabilities [b, K]; blocks, TimeoutError after timeout_s."""
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim != 3 or not len(x) or not np.isfinite(x).all():
            # refused here, before it can share a predictor call with anyone
            raise ValueError(
                f"windows must be finite float32 [b >= 1, L, C], got shape {x.shape}"
                + ("" if x.ndim != 3 or not len(x) else " with non-finite values")
            )
        pending = _Pending(x, time.monotonic())
        with self._condition:
            if self._closed:
                raise RuntimeError("request batcher is closed")
            self._queue.append(pending)
            self._condition.notify()
        if not pending.done.wait(self.timeout_s):
            with self._condition:
                if pending in self._queue:  # not taken yet: withdraw it so no one predicts it
                    self._queue.remove(pending)
            raise TimeoutError(f"no answer from the model within {self.timeout_s:g} s")
        if pending.error is not None:
            raise pending.error
        assert pending.probabilities is not None
        return pending.probabilities

    def swap(self, predictor: BatchPredictor) -> None:
        """Answer with `predictor` from the next batch on; the old one is closed then."""
        with self._condition:
            replaced, self._next_predictor = self._next_predictor, predictor
        if replaced is not None:  # never served: a newer one came first
            replaced.close()

    def close(self) -> None:
        """Answer what is queued, then stop the batching thread."""
        with self._condition:
            self._closed = True
            self._condition.notify()
        self._thread.join(timeout=self.timeout_s)

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._take_swap()
            self._run(batch)

    def _take_swap(self) -> None:
        """Between batches: the batching thread is the predictor's only caller, so the old
        model has nothing in flight and is closed at once."""
        with self._condition:
            new, self._next_predictor = self._next_predictor, None
        if new is None:
            return
        old, self.predictor = self.predictor, new
        log.info("model reloaded version=%s -> %s", old.manifest.version, new.manifest.version)
        old.close()

    def _next_batch(self) -> list[_Pending] | None:
        """Wait for a full batch or the oldest request's deadline; None once closed and empty."""
        with self._condition:
            while True:
                if not self._queue:
                    if self._closed:
                        return None
                    self._condition.wait()
                    continue
                waiting = sum(len(p.windows) for p in self._queue)
                deadline_s = self._queue[0].enqueued_at_s + self.max_wait_ms / 1000.0
                remaining_s = deadline_s - time.monotonic()
                if waiting >= self.max_batch or remaining_s <= 0 or self._closed:
                    return self._take()
                self._condition.wait(remaining_s)

    def _take(self) -> list[_Pending]:
        """Whole requests from the front, up to max_batch windows (at least one request)."""
        taken = [self._queue.popleft()]
        count = len(taken[0].windows)
        while self._queue and count + len(self._queue[0].windows) <= self.max_batch:
            count += len(self._queue[0].windows)
            taken.append(self._queue.popleft())
        return taken

    def _run(self, batch: list[_Pending]) -> None:
        """One predictor call for the batch, answers split back to each caller."""
        sizes = [len(p.windows) for p in batch]
        try:
            windows = np.concatenate([p.windows for p in batch], axis=0)  # [B, L, C]
            probabilities = self.predictor.predict_batch(windows)  # [B, K]
            self._batches += 1
        except Exception as exc:
            if len(batch) > 1:  # one at a time, so only the request that fails gets the error
                log.warning(
                    "predictor failed requests=%d windows=%d (%s); retrying each alone",
                    len(batch),
                    sum(sizes),
                    exc.__class__.__name__,
                )
                for pending in batch:
                    self._run([pending])
                return
            log.exception("predictor failed requests=1 windows=%d", sizes[0])
            batch[0].error = exc
            batch[0].done.set()
            return
        start = 0
        for pending, size in zip(batch, sizes, strict=True):
            pending.probabilities = probabilities[start : start + size]
            start += size
            pending.done.set()
        log.debug("batch requests=%d windows=%d", len(batch), sum(sizes))
