"""Hot model reload: a new version at the model's path is loaded beside the served one.

Users swap a complete model directory in atomically (rename it over the path, or
repoint a symlink). Every `interval_s`, and at once when asked (SIGHUP), a thread
reads the manifest's version at the path; a version other than the served one is
loaded and warmed on that thread (the worker keeps serving meanwhile), checked
against the config and the alert rules, and handed to the worker, which swaps it in
between two batches (stream/core/served_model.py). A model that fails to load or
does not fit is refused with one log line, and the served model stays; the same
directory state is not tried again until it changes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import orjson

from timesnet.batch_predictor import BatchPredictor
from timesnet.manifest import MANIFEST_FILE, ModelManifest

log = logging.getLogger(__name__)

Load = Callable[[Path], BatchPredictor]
Check = Callable[[ModelManifest], None]  # raises with the reason a model does not fit


class ModelReloader:
    """Watches one model path on its own thread; `take` hands over a loaded new version."""

    def __init__(
        self,
        path: Path,
        interval_s: float,
        serving_version: str,
        load: Load,
        check: Check,
        on_refused: Callable[[str], None],
        role: str = "model",
    ) -> None:
        self.path = Path(path)
        self.interval_s = interval_s  # 0: only when asked (SIGHUP)
        self.load = load
        self.check = check
        self.on_refused = on_refused
        self.role = role  # "model" or "shadow", for the log lines
        self._serving_version = serving_version
        self._seen = ""  # the directory state last looked at (not tried twice)
        self._ready: BatchPredictor | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._forced = False  # SIGHUP: try the directory again even if it was refused as is
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{role}-reload", daemon=True)

    def start(self) -> None:
        """Begin watching."""
        self._thread.start()

    def request_check(self) -> None:
        """Look now (SIGHUP), whatever the interval, and retry a directory refused as it is."""
        self._forced = True
        self._wake.set()

    def take(self) -> BatchPredictor | None:
        """A new model, loaded, warmed and checked, if one is waiting to be swapped in."""
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def close(self) -> None:
        """Stop watching; a loaded model nobody took is closed."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        leftover = self.take()
        if leftover is not None:
            leftover.close()

    def check_now(self) -> None:
        """One look at the path (what the thread does each interval)."""
        state, version = _directory_state(self.path)
        forced, self._forced = self._forced, False
        if (state == self._seen and not forced) or version == self._serving_version:
            self._seen = state
            return
        self._seen = state
        if version is None:
            self._refuse(f"{self.path / MANIFEST_FILE} has no readable version ({state})")
            return
        try:
            predictor = self.load(self.path.resolve())
        except Exception as exc:  # the reason is the line; the served model stays
            self._refuse(f"version {version} does not load: {_first_line(exc)}")
            return
        try:
            self.check(predictor.manifest)
        except Exception as exc:
            predictor.close()
            self._refuse(f"version {version} does not fit: {_first_line(exc)}")
            return
        log.info(
            "%s reload: version %s loaded beside %s, swapping it in",
            self.role,
            predictor.manifest.version,
            self._serving_version,
        )
        self._serving_version = predictor.manifest.version
        with self._lock:
            replaced, self._ready = self._ready, predictor
        if replaced is not None:  # loaded but never taken: a newer one came first
            replaced.close()

    def _refuse(self, reason: str) -> None:
        log.warning(
            "%s reload refused at %s: %s; serving %s",
            self.role,
            self.path,
            reason,
            self._serving_version,
        )
        self.on_refused(reason)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s if self.interval_s > 0 else None)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check_now()
            except Exception:  # never let the watcher die: the next look tries again
                log.exception("%s reload check failed", self.role)


def _directory_state(path: Path) -> tuple[str, str | None]:
    """A fingerprint of the manifest at `path` (or why it is unreadable), and its version."""
    try:
        raw = (path / MANIFEST_FILE).read_bytes()
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}", None
    fingerprint = hashlib.sha256(raw).hexdigest()
    try:
        version = orjson.loads(raw).get("version")
    except (orjson.JSONDecodeError, AttributeError):
        return fingerprint, None
    return fingerprint, version if isinstance(version, str) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
