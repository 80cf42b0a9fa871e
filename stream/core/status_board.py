"""What the status page shows, kept by the worker thread: latest event per device, recent alerts.

The worker thread writes into a `StatusBoard`; HTTP threads only read snapshots of
it (under its lock), so a page being open never slows or blocks the poll loop.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stream.core.alerts import Alert
from stream.core.columns import WindowRows

MAX_DEVICES = 200
MAX_ALERTS = 50
RATE_WINDOW_S = 5.0


class StatusBoard:
    """Latest event per device (bounded LRU) and recent alerts, safe to read from other threads."""

    def __init__(
        self,
        labels: Sequence[str],
        max_devices: int = MAX_DEVICES,
        max_alerts: int = MAX_ALERTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.labels = list(labels)
        self.max_devices = max_devices
        self.max_alerts = max_alerts
        self.clock = clock
        self._lock = threading.Lock()
        self._events: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._alerts: deque[dict[str, Any]] = deque(maxlen=max_alerts)
        self._started_s = clock()
        self.model_since_ms = time.time_ns() // 1_000_000  # when the served model started serving
        self.model_reloads = 0
        self.shadow: dict[str, Any] = {}  # version, windows, agreed: see shadow_batch
        self._samples: deque[tuple[float, int, int]] = deque([(self._started_s, 0, 0)])

    def add_batch(
        self,
        rows: WindowRows,
        probabilities: npt.NDArray[np.float32],
        class_ids: npt.NDArray[np.int64],
    ) -> None:
        """Remember the newest window of each device in a produced batch ([W, K] probabilities).

        class_id -1 (an abstained window) shows the last of `labels`: the abstain label.
        """
        produced_ms = time.time_ns() // 1_000_000
        scores = probabilities.max(axis=1).tolist()  # the top score, abstained or not
        starts, ends = rows.start_ts_ms.tolist(), rows.end_ts_ms.tolist()
        # Only a batch's last max_devices rows can survive the bound, so skip the rest.
        first = max(0, len(rows) - self.max_devices)
        with self._lock:
            for i in range(first, len(rows)):
                device = rows.device_ids[i]
                self._events[device] = {
                    "device_id": device,
                    "label": self.labels[int(class_ids[i])],
                    "score": round(scores[i], 4),
                    "window_start_ts": starts[i],
                    "window_end_ts": ends[i],
                    "produced_ms": produced_ms,
                }
                self._events.move_to_end(device)
            while len(self._events) > self.max_devices:
                self._events.popitem(last=False)

    def add_alerts(self, alerts: Sequence[Alert]) -> None:
        """Remember fired alerts (the oldest drop out past max_alerts)."""
        if not alerts:
            return
        with self._lock:
            for alert in alerts:
                self._alerts.append(
                    {
                        "rule": alert.rule,
                        "device_id": alert.device_id,
                        "label": alert.label,
                        "windows": len(alert.scores),
                        "min_score": round(min(alert.scores), 4),
                        "last_window_end_ts": alert.last_window_end_ts_ms,
                        "fired_ms": int(alert.fired_at_s * 1000),
                    }
                )

    def events(self) -> list[dict[str, Any]]:
        """The latest event of each remembered device, newest first."""
        with self._lock:
            return [dict(e) for e in reversed(self._events.values())]

    def alerts(self) -> list[dict[str, Any]]:
        """Recent alerts, newest first."""
        with self._lock:
            return [dict(a) for a in reversed(self._alerts)]

    def rates(self, records: int, windows: int) -> dict[str, float]:
        """Records/s and windows/s over the last RATE_WINDOW_S to 2x that (since start at first)."""
        now_s = self.clock()
        with self._lock:
            samples = self._samples
            while len(samples) > 1 and now_s - samples[1][0] >= RATE_WINDOW_S:
                samples.popleft()
            then_s, then_records, then_windows = samples[0]
            if now_s - samples[-1][0] >= 0.5:
                samples.append((now_s, records, windows))
        span_s = max(now_s - then_s, 1e-3)
        return {
            "records_per_s": round((records - then_records) / span_s, 1),
            "windows_per_s": round((windows - then_windows) / span_s, 2),
            "over_s": round(span_s, 1),
        }

    @property
    def uptime_s(self) -> float:
        """Seconds since the board (and its worker) was created."""
        return self.clock() - self._started_s

    def model_changed(self, version: str) -> None:
        """A reload swapped in `version` now."""
        with self._lock:
            self.model_since_ms = time.time_ns() // 1_000_000
            self.model_reloads += 1

    def shadow_batch(self, version: str, windows: int, agreed: int) -> None:
        """The shadow classified `windows` windows, `agreed` of them like the primary."""
        with self._lock:
            self.shadow = {
                "version": version,
                "windows": self.shadow.get("windows", 0) + windows,
                "agreed": self.shadow.get("agreed", 0) + agreed,
            }

    def shadow_status(self) -> dict[str, Any] | None:
        """The shadow's version, windows and agreement rate (None without a shadow batch)."""
        with self._lock:
            if not self.shadow:
                return None
            windows = self.shadow["windows"]
            rate = self.shadow["agreed"] / windows if windows else None
            return {**self.shadow, "agreement_rate": None if rate is None else round(rate, 4)}
