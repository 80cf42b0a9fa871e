"""The predictor on its own thread, so Kafka I/O and decoding overlap inference.

Paddle releases the GIL while it computes, so the poll loop keeps fetching and
cutting windows while a batch is being classified. At most `max_in_flight`
batches are submitted at once; a predictor error is latched and re-raised in
the poll loop (models fail fast: nothing is committed after it).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from stream.columns import WindowRows
from stream.side_requests import SideRequest, answer

log = logging.getLogger(__name__)


class BatchPredictor(Protocol):
    """What the worker needs of a model: raw windows in, probabilities out."""

    def predict_batch(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """[B, L, C] raw windows -> [B, K] probabilities."""
        ...


@dataclass(frozen=True)
class Classified:
    """A batch back from the predictor."""

    rows: WindowRows
    token: int  # the offset tracker's hold on these windows
    probabilities: npt.NDArray[np.float32]  # [B, K]
    inference_s: float


class PredictorError(RuntimeError):
    """The predictor raised; the worker stops without committing past it."""


class InferenceThread:
    """Runs `predictor.predict_batch` for submitted batches, one at a time, in order."""

    def __init__(self, predictor: BatchPredictor, max_in_flight: int = 2) -> None:
        self.predictor = predictor
        self.max_in_flight = max_in_flight
        self._inbox: queue.Queue[tuple[WindowRows, int, list[SideRequest]] | None] = queue.Queue()
        self._outbox: queue.Queue[Classified] = queue.Queue()
        self._in_flight = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="predictor", daemon=True)
        self._thread.start()

    @property
    def in_flight(self) -> int:
        """Batches submitted and not yet collected."""
        return self._in_flight

    def can_submit(self) -> bool:
        """Whether another batch may be submitted now."""
        return self._in_flight < self.max_in_flight

    def submit(self, rows: WindowRows, token: int, side: list[SideRequest] | None = None) -> None:
        """Queue a batch for the predictor; `side` requests ride along after the rows."""
        self._raise_if_failed()
        self._in_flight += 1
        self._inbox.put((rows, token, side or []))

    def collect(self, timeout_s: float = 0.0) -> list[Classified]:
        """Finished batches in submission order; waits up to `timeout_s` for the first."""
        done: list[Classified] = []
        try:
            if timeout_s > 0 and self._in_flight:
                done.append(self._outbox.get(timeout=timeout_s))
            while True:
                done.append(self._outbox.get_nowait())
        except queue.Empty:
            pass
        self._in_flight -= len(done)
        self._raise_if_failed()
        return done

    def close(self) -> None:
        """Stop the thread after the batches already submitted."""
        self._inbox.put(None)
        self._thread.join(timeout=30)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise PredictorError(f"predictor failed: {self._error}") from self._error

    def _loop(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            rows, token, side = item
            data = rows.data
            if side:
                data = np.concatenate([data, *(request.windows for request in side)])
            started = time.perf_counter()
            try:
                probabilities = self.predictor.predict_batch(data)
            except BaseException as exc:  # latched and re-raised in the poll loop
                log.exception("predictor failed batch=%d", len(data))
                for request in side:
                    request.error = exc
                    request.done.set()
                self._error = exc
                return
            elapsed_s = time.perf_counter() - started
            answer(side, probabilities[len(rows) :])
            self._outbox.put(Classified(rows, token, probabilities[: len(rows)], elapsed_s))
