"""Per-device ring buffers and sliding windows (numpy only: no Kafka, no Paddle)."""

from __future__ import annotations

from windows.batch import WindowBatch
from windows.config import WindowConfig
from windows.errors import WindowError
from windows.store import COUNTER_NAMES, WindowStore

__all__ = ["COUNTER_NAMES", "WindowBatch", "WindowConfig", "WindowError", "WindowStore"]
