"""Per-device ring buffers and sliding windows (numpy only: no Kafka, no Paddle).

``WindowStore(WindowConfig(length, hop, channels, ...))`` takes samples with
``append_runs`` (a whole poll as runs: one device, source and offset per run, e.g.
one Kafka record each), ``append_bulk`` (a whole poll, one device id per sample),
``append_chunk`` (one record of n samples) or ``append_one``; ``ready_windows()``
drains a columnar ``WindowBatch``; ``low_watermarks()`` gives, per source, the
smallest offset an unfinished window still needs (what the worker may commit).

Notes for callers:

- Memory is reserved once: ``max_devices x config.bytes_per_device``; pages are
  committed as devices arrive. With ``reorder_ms == 0`` (in-order samples) a device
  holds ``length`` samples of float32 values plus four int64 per window slot
  (``ceil(length / hop)`` slots) and ~70 bytes of scalars: 3,881 bytes for
  L 315, hop 315, C 3. With ``reorder_ms > 0`` every sample of ``length + slack`` also
  keeps an int64 timestamp and offset (12.5 KB for the same shape). Device ids cost
  ~110 bytes more each.
- Windows become ready in arrival order of the sample that readied them; within a
  source, ``ready_offsets`` never decrease when offsets arrive in order.
- Replay: a fresh store fed from ``low_watermarks()`` reproduces the unemitted windows
  exactly for a device whose samples are in order and that is alone on its source.
  Count-based windows have no absolute phase, so a device whose replay starts earlier
  than its own unfinished window (other devices on the same source held the watermark
  back, or a chunk record starts before the window) restarts its count there and its
  later windows can shift by up to ``hop - 1`` samples.
"""

from __future__ import annotations

from windows.batch import WindowBatch
from windows.config import WindowConfig
from windows.errors import WindowError
from windows.store import COUNTER_NAMES, Rejected, WindowStore

__all__ = ["COUNTER_NAMES", "Rejected", "WindowBatch", "WindowConfig", "WindowError", "WindowStore"]
