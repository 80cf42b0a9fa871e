"""Native libraries' stdout chatter, sent to stderr so that a command's stdout stays its own.

Paddle's C++ passes print diagnostics ("ReduceMeanCheckIfOneDNNSupport") straight to
file descriptor 1 while a predictor is built, and paddle2onnx prints its progress there;
either would corrupt JSON-lines output on stdout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for a while (Python's and native writes alike)."""
    with _stdout_to(2):
        yield


@contextmanager
def native_stdout_discarded() -> Iterator[None]:
    """Point file descriptor 1 at /dev/null for a while.

    For a predictor's first run: Paddle 3.3's oneDNN kernel choice prints
    "ReduceMeanCheckIfOneDNNSupport" there, once per mean operator, with a plain write
    that no GLOG setting reaches (a debug print Paddle removed upstream in
    PaddlePaddle/Paddle#79332). It happens at a predictor's first run only, which
    load_predictor's warm-up makes, so nothing of it reaches a terminal.
    """
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        with _stdout_to(null):
            yield
    finally:
        os.close(null)


@contextmanager
def _stdout_to(fd: int) -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(fd, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
