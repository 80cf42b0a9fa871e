"""Importing Paddle without losing the process's SIGTERM and SIGINT handlers.

Paddle's import installs C-level handlers for SIGTERM and other signals that print
a FatalError and abort, silently replacing any handler Python had installed: a
worker asked to stop while its model loads would die instead of draining. The
import here hands those two signals back to Python right after.
"""

from __future__ import annotations

import signal
import threading
from types import ModuleType

HANDED_BACK = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def import_paddle() -> ModuleType:
    """`import paddle`, with Python's SIGTERM/SIGINT/SIGHUP handlers in force again after."""
    import paddle

    if threading.current_thread() is threading.main_thread():
        paddle.disable_signal_handler()
        for sig in HANDED_BACK:
            # Python still lists its own handler; installing it again puts it back in C
            signal.signal(sig, signal.getsignal(sig))
    return paddle
