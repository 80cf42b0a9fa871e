"""The demo's parts: find the UWave data, replay it as device streams, score the events.

Each demo device streams UWave test cases back to back at a nominal 100 Hz, in
chunk records of `chunk_samples` samples. With window length = hop = 315, every
window of a device is exactly one test case, so each event can be scored against
the case's known label.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import orjson

from stream.errors import SensorstreamError
from timesnet import uwave
from timesnet.errors import ModelError

if TYPE_CHECKING:
    from kafka import KafkaProducer

log = logging.getLogger(__name__)

UWAVE_ARCHIVE_URL = "https://www.timeseriesclassification.com/aeon-toolkit/UWaveGestureLibrary.zip"
INTERVAL_MS = 10  # nominal 100 Hz


def find_uwave(explicit: str | None = None, download: bool = True) -> Path:
    """The folder holding the UWave `.ts` files (timesnet.uwave.find_uwave: --data,
    $SENSORSTREAM_DATA, ../shared/data/uwave, the cache), else a download into the cache."""
    try:
        return uwave.find_uwave(explicit)
    except ModelError as exc:
        if explicit or os.environ.get(uwave.DATA_ENV):
            raise SensorstreamError(str(exc)) from exc
    target = uwave.cache_data_dir() / "uwave"
    if download and _download_uwave(target):
        return target
    raise SensorstreamError(
        f"no UWave data found and it could not be downloaded: get "
        f"{' and '.join(uwave.UWAVE_FILES)} (UEA archive, UWaveGestureLibrary) and put them "
        f"in {target}, or pass --data DIR"
    )


def _download_uwave(target: Path) -> bool:
    try:
        with urllib.request.urlopen(UWAVE_ARCHIVE_URL, timeout=20) as response:
            payload = response.read()
    except OSError as exc:
        log.warning("download failed url=%s error=%s", UWAVE_ARCHIVE_URL, exc)
        return False
    target.mkdir(parents=True, exist_ok=True)
    archive = target / "UWaveGestureLibrary.zip"
    archive.write_bytes(payload)
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.namelist():
            name = Path(member).name
            if name in uwave.UWAVE_FILES:
                (target / name).write_bytes(zipped.read(member))
    return uwave.holds_uwave(target)


@dataclass(frozen=True)
class DeviceStreams:
    """Test cases dealt round-robin to devices, each streamed from `start_ms`."""

    x: npt.NDArray[np.float32]  # [N, L, C]
    devices: int
    start_ms: int
    chunk_samples: int = 10
    interval_ms: int = INTERVAL_MS

    def device_id(self, device: int) -> str:
        """Name of demo device number `device`."""
        return f"glove-{device:03d}"

    def cases_of(self, device: int) -> list[int]:
        """Test case indexes streamed by a device, in order."""
        return list(range(device, len(self.x), self.devices))

    def expected(self) -> dict[tuple[str, int], int]:
        """(device id, window start ts) -> test case index of every expected window."""
        length = self.x.shape[1]
        found: dict[tuple[str, int], int] = {}
        for device in range(self.devices):
            for k, case in enumerate(self.cases_of(device)):
                start = self.start_ms + k * length * self.interval_ms
                found[(self.device_id(device), start)] = case
        return found

    def window_starts(self, hop: int) -> set[tuple[str, int]]:
        """(device id, window start ts) of every window a worker with this hop must emit."""
        length = self.x.shape[1]
        found: set[tuple[str, int]] = set()
        for device in range(self.devices):
            total = len(self.cases_of(device)) * length
            for start in range(0, total - length + 1, hop):
                found.add((self.device_id(device), self.start_ms + start * self.interval_ms))
        return found

    def steps(self) -> Iterator[list[tuple[bytes, bytes, int]]]:
        """Per time step, one chunk record (key, value, samples) from each streaming device."""
        series = {
            d: self.x[self.cases_of(d)].reshape(-1, self.x.shape[2]) for d in range(self.devices)
        }
        total = max(len(s) for s in series.values()) if series else 0
        for first in range(0, total, self.chunk_samples):
            step: list[tuple[bytes, bytes, int]] = []
            for device, values in series.items():
                chunk = values[first : first + self.chunk_samples]
                if not len(chunk):
                    continue
                device_id = self.device_id(device)
                record = {
                    "device_id": device_id,
                    "ts": self.start_ms + first * self.interval_ms,
                    "interval_ms": self.interval_ms,
                    "values": chunk.tolist(),
                }
                step.append((device_id.encode(), orjson.dumps(record), len(chunk)))
            yield step

    def step_duration_s(self, speed: float) -> float:
        """Wall time of one step at `speed` x real time (0 = as fast as possible)."""
        return 0.0 if speed <= 0 else self.chunk_samples * self.interval_ms / 1000.0 / speed


@dataclass
class Scoreboard:
    """Events matched against the expected windows."""

    expected: dict[tuple[str, int], int]
    labels: npt.NDArray[np.int64]  # [N] true class ids of the test cases
    seen: dict[tuple[str, int], int] = field(default_factory=dict)
    duplicates: int = 0
    unexpected: int = 0
    correct: int = 0

    def add(self, event: dict) -> None:
        """Score one event (a parsed JSON event)."""
        key = (event["device_id"], int(event["window_start_ts"]))
        case = self.expected.get(key)
        if case is None:
            self.unexpected += 1
            return
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen[key] = int(event["class_id"])
        self.correct += int(event["class_id"]) == int(self.labels[case])

    @property
    def complete(self) -> bool:
        """Every expected window has an event."""
        return len(self.seen) >= len(self.expected)

    @property
    def accuracy(self) -> float:
        """Share of distinct expected windows labeled correctly so far."""
        return self.correct / len(self.seen) if self.seen else float("nan")


def produce_streams(
    producer: KafkaProducer, topic: str, streams: DeviceStreams, speed: float, stop: threading.Event
) -> int:
    """Send every step of `streams` to `topic`, paced at `speed`; returns samples sent."""
    step_s = streams.step_duration_s(speed)
    next_at = time.monotonic()
    sent = 0
    for step in streams.steps():
        if stop.is_set():
            break
        for key, value, samples in step:
            producer.send(topic, key=key, value=value)
            sent += samples
        if step_s:
            next_at += step_s
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    producer.flush()
    return sent
