"""The root of every error the windows package raises on purpose."""

from __future__ import annotations


class WindowError(Exception):
    """A misuse of the window store (bad configuration or malformed input); the message says what to fix."""
