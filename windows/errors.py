"""The root of every error the windows package raises on purpose."""

from __future__ import annotations


class WindowError(Exception):
    """Bad configuration or a malformed call; the message says what to fix."""
