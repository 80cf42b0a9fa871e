"""Label alerts: a rule is a label plus a score range, held for N consecutive windows of a device.

A window matches a rule when its label equals ``rule.label`` and
``min_score <= score <= max_score`` (compared in float32, the precision events
carry, so a rule written with the score a user read in an event matches it).
Per device and rule the evaluator counts consecutive matching windows; a
non-matching window of that device resets the count. When the count reaches
``min_consecutive`` the rule fires, unless the same device and rule fired less
than ``cooldown_s`` ago; after firing, the count restarts from zero. While a rule
is held back by its cooldown, the run keeps only its latest ``min_consecutive``
windows, so the first window after the cooldown that completes such a run fires.

Windows of one device must be passed in time order (the worker emits them so).

State is bounded: at most one entry per (device, rule), holding at most
``min_consecutive`` windows (score, timestamps, event id) and the time of the last
firing. An entry is created by a matching window and dropped when a
non-matching window empties its run outside a cooldown, or right after firing
when the rule has no cooldown; an entry still cooling down stays until the next
window of its device. ``forget_devices`` drops the devices the worker no longer
holds (partitions revoked, idle devices evicted), so the entries never outnumber
the worker's own device bound times the number of rules.

An alert as produced to ``[kafka] alerts_topic`` (key = device id)::

    {"alert_id": "...", "device_id": "glove-7", "rule": "fall", "label": "8.0",
     "scores": [0.93, 0.97], "windows": 2,
     "first_window_start_ts": 1732280000123, "first_window_end_ts": 1732280003263,
     "last_window_start_ts": 1732280003273, "last_window_end_ts": 1732280006413,
     "event_ids": ["...", "..."], "fired_at": 1732280006500}

Timestamps are epoch milliseconds, like the events' ``window_start_ts`` and ``emitted_at``.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson

from stream.config.schema import AlertRule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """A fired rule: the run of windows that made it fire (oldest first)."""

    device_id: str
    rule: str
    label: str
    scores: tuple[float, ...]  # [N] float32 values of the run's windows
    first_window_start_ts_ms: int
    first_window_end_ts_ms: int
    last_window_start_ts_ms: int
    last_window_end_ts_ms: int
    event_ids: tuple[str, ...]  # [N]
    fired_at_s: float  # epoch seconds

    @property
    def alert_id(self) -> str:
        """Deterministic id (32 hex): the same run of the same rule always gets the same id."""
        joined = f"{self.device_id}\x1f{self.rule}\x1f{self.event_ids[-1]}".encode()
        return hashlib.sha256(joined).hexdigest()[:32]

    def to_json(self) -> bytes:
        """The alert record's value (see the module docstring for the layout)."""
        document = {
            "alert_id": self.alert_id,
            "device_id": self.device_id,
            "rule": self.rule,
            "label": self.label,
            # float32 array: shortest float32 form, the same digits the events show
            "scores": np.asarray(self.scores, dtype=np.float32),
            "windows": len(self.scores),
            "first_window_start_ts": self.first_window_start_ts_ms,
            "first_window_end_ts": self.first_window_end_ts_ms,
            "last_window_start_ts": self.last_window_start_ts_ms,
            "last_window_end_ts": self.last_window_end_ts_ms,
            "event_ids": list(self.event_ids),
            "fired_at": int(round(self.fired_at_s * 1000)),
        }
        return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


@dataclass(frozen=True)
class _Window:
    score: float
    start_ts_ms: int
    end_ts_ms: int
    event_id: str


@dataclass
class _RunState:
    run: deque[_Window]
    last_fired_s: float | None = None


@dataclass(frozen=True)
class _Batch:
    """One evaluate() call's windows as plain Python values, converted once."""

    device_ids: list[str]
    scores: list[float]
    starts: list[int]
    ends: list[int]
    event_ids: list[str]


class AlertEvaluator:
    """Runs label-alert rules over batches of labeled windows, keeping per-device run state."""

    def __init__(self, rules: Sequence[AlertRule]) -> None:
        self.rules = tuple(rules)
        self._labels = np.asarray([rule.label for rule in self.rules], dtype=object)  # [R]
        self._min_scores = np.asarray([r.min_score for r in self.rules], dtype=np.float32)  # [R]
        self._max_scores = np.asarray([r.max_score for r in self.rules], dtype=np.float32)  # [R]
        # per rule: device id -> its run and last firing
        self._states: list[dict[str, _RunState]] = [{} for _ in self.rules]

    @property
    def state_entries(self) -> int:
        """(device, rule) pairs currently held: in a run or cooling down."""
        return sum(len(states) for states in self._states)

    def forget_devices(self, device_ids: Iterable[str]) -> None:
        """Drop every rule's state for these devices (partitions revoked, devices evicted)."""
        dropped = list(device_ids)
        for states in self._states:
            for device_id in dropped:
                states.pop(device_id, None)

    def evaluate(
        self,
        device_ids: list[str],
        labels: list[str],
        scores: npt.NDArray[np.floating],
        window_start_ts_ms: npt.NDArray[np.int64],
        window_end_ts_ms: npt.NDArray[np.int64],
        event_ids: list[str],
        now_s: float,
    ) -> list[Alert]:
        """Feed one batch of windows [W] (per device in time order); return the alerts fired."""
        count = len(device_ids)
        if not (
            len(labels)
            == len(scores)
            == len(window_start_ts_ms)
            == len(window_end_ts_ms)
            == len(event_ids)
            == count
        ):
            raise ValueError("evaluate: every argument needs one entry per window")
        if not self.rules or count == 0:
            return []
        matches = self._match(labels, scores)  # [R, W]
        devices = np.asarray(device_ids, dtype=object)  # [W]
        batch: _Batch | None = None
        fired: list[tuple[int, int, Alert]] = []
        for r, rule in enumerate(self.rules):
            todo = np.flatnonzero(self._to_walk(r, devices, matches[r]))
            if not len(todo):
                continue
            batch = batch or _Batch(
                list(device_ids),
                np.asarray(scores, dtype=np.float32).tolist(),
                np.asarray(window_start_ts_ms, dtype=np.int64).tolist(),
                np.asarray(window_end_ts_ms, dtype=np.int64).tolist(),
                list(event_ids),
            )
            for w in todo.tolist():
                alert = self._step(r, rule, batch, w, bool(matches[r, w]), now_s)
                if alert is not None:
                    fired.append((w, r, alert))
        fired.sort(key=lambda item: (item[0], item[1]))
        return [alert for _, _, alert in fired]

    def _match(self, labels: list[str], scores: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
        """[R, W] whether window w matches rule r (label and float32 score range)."""
        window_labels = np.asarray(labels, dtype=object)  # [W]
        window_scores = np.asarray(scores, dtype=np.float32)  # [W]
        same_label = window_labels[None, :] == self._labels[:, None]  # [R, W]
        in_range = (window_scores[None, :] >= self._min_scores[:, None]) & (
            window_scores[None, :] <= self._max_scores[:, None]
        )  # [R, W]
        return np.asarray(same_label, dtype=bool) & in_range

    def _to_walk(
        self, r: int, devices: npt.NDArray[np.object_], matched: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.bool_]:
        """[W] windows rule r must walk: every window of a device that matches in this batch
        or already has state (a run to break or a cooldown to end); the rest cannot change it."""
        states = self._states[r]
        if not states and not matched.any():
            return matched
        unique, inverse = np.unique(devices.astype(str), return_inverse=True)
        matched_devices = set(devices[matched].tolist())
        relevant = np.fromiter(
            (d in states or d in matched_devices for d in unique.tolist()),
            dtype=bool,
            count=len(unique),
        )
        return relevant[inverse]

    def _step(
        self, r: int, rule: AlertRule, batch: _Batch, w: int, matched: bool, now_s: float
    ) -> Alert | None:
        """Advance rule r's run of window w's device by one window."""
        states = self._states[r]
        device_id = batch.device_ids[w]
        state = states.get(device_id)
        if not matched:
            if state is not None:
                state.run.clear()
                self._drop_if_idle(states, device_id, state, rule, now_s)
            return None
        if state is None:
            state = states[device_id] = _RunState(deque(maxlen=rule.min_consecutive))
        state.run.append(
            _Window(batch.scores[w], batch.starts[w], batch.ends[w], batch.event_ids[w])
        )
        if len(state.run) < rule.min_consecutive:
            return None
        if state.last_fired_s is not None and now_s - state.last_fired_s < rule.cooldown_s:
            return None  # held back: the deque keeps sliding over the latest windows
        alert = _alert(device_id, rule, tuple(state.run), now_s)
        state.last_fired_s = now_s
        state.run.clear()
        if rule.cooldown_s == 0:
            del states[device_id]  # nothing left to remember
        log.info(
            "alert fired rule=%s device=%s label=%s windows=%d",
            rule.name,
            device_id,
            rule.label,
            len(alert.scores),
        )
        return alert

    @staticmethod
    def _drop_if_idle(
        states: dict[str, _RunState],
        device_id: str,
        state: _RunState,
        rule: AlertRule,
        now_s: float,
    ) -> None:
        cooling = state.last_fired_s is not None and now_s - state.last_fired_s < rule.cooldown_s
        if not state.run and not cooling:
            del states[device_id]


def _alert(device_id: str, rule: AlertRule, run: tuple[_Window, ...], now_s: float) -> Alert:
    return Alert(
        device_id=device_id,
        rule=rule.name,
        label=rule.label,
        scores=tuple(window.score for window in run),
        first_window_start_ts_ms=run[0].start_ts_ms,
        first_window_end_ts_ms=run[0].end_ts_ms,
        last_window_start_ts_ms=run[-1].start_ts_ms,
        last_window_end_ts_ms=run[-1].end_ts_ms,
        event_ids=tuple(window.event_id for window in run),
        fired_at_s=now_s,
    )
