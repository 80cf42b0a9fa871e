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
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
