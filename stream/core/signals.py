"""SIGTERM and SIGINT ask a running worker to drain and stop, also while it starts."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    """Anything with a graceful stop (the worker)."""

    def request_stop(self) -> None:
        """Stop polling; drain, flush, commit and return."""
        ...


class Reloadable(Protocol):
    """A model watcher (stream/core/model_reload.py)."""

    def request_check(self) -> None:
        """Look at the model path now."""
        ...


class StopForwarder:
    """Takes a stop request before the worker exists and hands it on once it does.

    An orchestrator may send SIGTERM while the model still loads; the process then
    starts, drains nothing and exits 0 instead of dying of the signal.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: Stoppable | None = None
        self._requested = False

    def request_stop(self) -> None:
        """Forward to the worker, or remember until `attach`."""
        with self._lock:
            self._requested = True
            target = self._target
        if target is not None:
            target.request_stop()

    def attach(self, target: Stoppable) -> None:
        """The worker exists now: a stop already requested reaches it at once."""
        with self._lock:
            self._target = target
            requested = self._requested
        if requested:
            target.request_stop()


@contextmanager
def stop_on_signals(worker: Stoppable) -> Iterator[None]:
    """SIGTERM and SIGINT ask the worker to drain and stop (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal=%s stopping", signal.Signals(signum).name)
        worker.request_stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def reload_on_sighup(reloaders: Sequence[Reloadable]) -> Iterator[None]:
    """SIGHUP asks each reloader to look at its model path now (main thread only)."""
    if threading.current_thread() is not threading.main_thread() or not reloaders:
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal=SIGHUP checking the model paths for a new version")
        for reloader in reloaders:
            reloader.request_check()

    previous = signal.signal(signal.SIGHUP, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)
