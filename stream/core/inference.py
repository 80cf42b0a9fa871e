"""The predictor on its own thread, so Kafka I/O and decoding overlap inference.

Paddle Inference's run() keeps the GIL on CPU (timesnet/predictor.py measured it),
so the poll loop mostly waits while a batch computes; the thread still lets the
loop poll, decode and produce between batches and while the predictor copies data
in and out, and keeps one batch queued so the predictor never waits for the loop.
At most `max_in_flight` batches are submitted at once. A predictor error on stream
windows is latched and re-raised in the poll loop (models fail fast: nothing is
committed after it). When HTTP side requests rode in the failed batch, the stream
rows and each request are retried alone first, so that a request the model cannot
take fails only itself.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream.core.columns import WindowRows
from stream.core.side_requests import SideRequest, SideRequestFailed, answer
from stream.errors import SensorstreamError
from timesnet.batch_predictor import BatchPredictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Classified:
    """A batch back from the predictor."""

    rows: WindowRows
    token: int  # the offset tracker's hold on these windows
    probabilities: npt.NDArray[np.float32]  # [B, K]
    inference_s: float
    predictor: BatchPredictor  # the model that classified them (one of two during a reload)


@dataclass(frozen=True)
class _Submitted:
    predictor: BatchPredictor
    rows: WindowRows
    token: int
    side: list[SideRequest]


class PredictorError(SensorstreamError):
    """The predictor raised on stream windows; the worker stops without committing past it."""


class InferenceThread:
    """Runs each submitted batch through the predictor it was submitted with, in order.

    The predictor travels with the batch, so a model swapped in by a reload takes
    the batches submitted after the swap while those before it finish on the old one.
    """

    def __init__(
        self,
        max_in_flight: int = 2,
        on_stream_error: Callable[[], None] | None = None,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.on_stream_error = on_stream_error  # counts the failure before the poll loop sees it
        self._inbox: queue.Queue[_Submitted | None] = queue.Queue()
        self._outbox: queue.Queue[Classified] = queue.Queue()
        self._in_flight = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="predictor", daemon=True)
        self._thread.start()

    @property
    def in_flight(self) -> int:
        """Batches submitted and not yet collected."""
        return self._in_flight

    @property
    def failed(self) -> bool:
        """Whether a batch of stream windows failed (nothing may be committed past it)."""
        return self._error is not None

    def can_submit(self) -> bool:
        """Whether another batch may be submitted now."""
        return self._in_flight < self.max_in_flight

    def submit(
        self,
        predictor: BatchPredictor,
        rows: WindowRows,
        token: int,
        side: list[SideRequest] | None = None,
    ) -> None:
        """Queue a batch for `predictor`; `side` requests ride along after the rows."""
        self._raise_if_failed()
        self._in_flight += 1
        self._inbox.put(_Submitted(predictor, rows, token, side or []))

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
            raise PredictorError(
                f"the predictor failed on stream windows ({first_line(self._error)}); nothing "
                "past them was committed: check model.path and the model's log lines above, "
                "then restart the worker"
            ) from self._error

    def _loop(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            started = time.perf_counter()
            probabilities = self._predict_batch(item.predictor, item.rows, item.side)
            if probabilities is None:
                return
            elapsed_s = time.perf_counter() - started
            self._outbox.put(
                Classified(item.rows, item.token, probabilities, elapsed_s, item.predictor)
            )

    def _predict_batch(
        self, predictor: BatchPredictor, rows: WindowRows, side: list[SideRequest]
    ) -> npt.NDArray[np.float32] | None:
        """The rows' probabilities [B, K] with `side` answered; None once the stream failed."""
        data = np.concatenate([rows.data, *(request.windows for request in side)])
        try:
            probabilities = predictor.predict_batch(data)
        except BaseException as exc:  # latched below, or retried apart
            if not side:
                self._fail(exc, len(rows), side)
                return None
            log.warning(
                "predictor failed batch=%d side_requests=%d; retrying them apart (%s)",
                len(data),
                len(side),
                first_line(exc),
            )
            return self._predict_apart(predictor, rows, side)
        answer(side, probabilities[len(rows) :])
        return probabilities[: len(rows)]

    def _predict_apart(
        self, predictor: BatchPredictor, rows: WindowRows, side: list[SideRequest]
    ) -> npt.NDArray[np.float32] | None:
        """Each side request alone (its failure is its own answer), then the stream rows."""
        for request in side:
            try:
                answer([request], predictor.predict_batch(request.windows))
            except Exception as exc:  # the request's answer, not the worker's end
                log.info(
                    "side request failed windows=%d: %s", len(request.windows), first_line(exc)
                )
                request.error = SideRequestFailed(
                    f"the model cannot classify this request: {first_line(exc)}"
                )
                request.done.set()
        if not len(rows):
            return np.zeros((0, 0), dtype=np.float32)  # no stream rows to answer
        try:
            return predictor.predict_batch(rows.data)
        except BaseException as exc:
            self._fail(exc, len(rows), [])
            return None

    def _fail(self, exc: BaseException, windows: int, side: list[SideRequest]) -> None:
        """Latch a stream failure: count it, log it, fail the requests that rode along."""
        log.error("predictor failed on stream windows=%d", windows, exc_info=exc)
        if self.on_stream_error is not None:
            self.on_stream_error()
        for request in side:
            request.error = TimeoutError("the worker stopped: its predictor failed")
            request.done.set()
        self._error = exc
        return None


def first_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first non-empty line of its message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
