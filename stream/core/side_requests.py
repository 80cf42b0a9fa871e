"""Windows that ride along in the worker's batches without becoming events.

The classification endpoint, when served by a running worker, sends its windows
through the same predictor batches as the stream, so an HTTP request costs a few
rows of an inference call the worker makes anyway instead of a call of its own.
The HTTP threads queue `SideRequest`s; the poll loop appends the waiting ones to
its next batch and hands each its rows of the answer. A request the model cannot
take fails alone with `SideRequestFailed`, which the endpoint answers 422.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream.errors import RequestRejected


class SideRequestFailed(RequestRejected):
    """The model raised on this request's windows alone: the request's 422, not the worker's end."""

    def __init__(self, message: str) -> None:
        super().__init__(422, message)


@dataclass
class SideRequest:
    """Raw windows [B, L, C] waiting for their probabilities [B, K]."""

    windows: npt.NDArray[np.float32]
    done: threading.Event = field(default_factory=threading.Event)
    probabilities: npt.NDArray[np.float32] | None = None
    error: BaseException | None = None


class SideQueue:
    """Thread-safe queue of side requests (HTTP threads in, the poll loop out)."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self._waiting: deque[SideRequest] = deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._waiting)

    def classify(self, windows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Block until the worker has classified `windows` (the endpoint's Classify contract)."""
        request = SideRequest(np.ascontiguousarray(windows, dtype=np.float32))
        with self._lock:
            self._waiting.append(request)
        if not request.done.wait(self.timeout_s):
            raise TimeoutError(f"the worker did not classify the request within {self.timeout_s} s")
        if request.error is not None:
            raise request.error
        assert request.probabilities is not None
        return request.probabilities

    def take(self, max_windows: int) -> list[SideRequest]:
        """Requests whose windows fit in `max_windows` (at least one request if any wait)."""
        taken: list[SideRequest] = []
        count = 0
        with self._lock:
            while self._waiting and (
                not taken or count + len(self._waiting[0].windows) <= max_windows
            ):
                request = self._waiting.popleft()
                taken.append(request)
                count += len(request.windows)
        return taken

    def fail_all(self, error: BaseException) -> None:
        """Answer every waiting request with `error` (the worker is stopping)."""
        with self._lock:
            waiting, self._waiting = list(self._waiting), deque()
        for request in waiting:
            request.error = error
            request.done.set()


def answer(requests: list[SideRequest], probabilities: npt.NDArray[np.float32]) -> None:
    """Hand each request its rows of `probabilities` (the tail of a batch's answer)."""
    start = 0
    for request in requests:
        stop = start + len(request.windows)
        request.probabilities = probabilities[start:stop]
        start = stop
        request.done.set()
