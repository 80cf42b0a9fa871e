"""The status board: latest event per device (bounded, newest first), recent alerts, rates."""

from __future__ import annotations

import numpy as np

from stream.core.alerts import Alert
from stream.core.status_board import StatusBoard
from tests.stream.rows import make_rows

LABELS = ["walk", "run", "jump"]


def one_hot(class_ids: list[int], score: float = 0.9) -> np.ndarray:
    """[W, K] probabilities putting `score` on each row's class."""
    probabilities = np.full((len(class_ids), len(LABELS)), (1 - score) / 2, dtype=np.float32)
    probabilities[np.arange(len(class_ids)), class_ids] = score
    return probabilities


def test_a_device_keeps_only_its_latest_event_and_the_newest_devices_come_first() -> None:
    board = StatusBoard(LABELS)
    board.add_batch(make_rows(3), one_hot([0, 1, 2]), np.array([0, 1, 2]))
    later = make_rows(1)  # dev-0 again, now "jump"
    board.add_batch(later, one_hot([2], 0.7), np.array([2]))
    events = board.events()
    assert [e["device_id"] for e in events] == ["dev-0", "dev-2", "dev-1"]
    assert (events[0]["label"], events[0]["score"]) == ("jump", 0.7)
    assert [e["label"] for e in events[1:]] == ["jump", "run"]


def test_devices_beyond_the_bound_drop_the_least_recently_updated() -> None:
    board = StatusBoard(LABELS, max_devices=5)
    board.add_batch(make_rows(4), one_hot([0] * 4), np.zeros(4, dtype=np.int64))
    board.add_batch(make_rows(3, device_prefix="new"), one_hot([1] * 3), np.ones(3, dtype=np.int64))
    assert [e["device_id"] for e in board.events()] == ["new-2", "new-1", "new-0", "dev-3", "dev-2"]
    board.add_batch(
        make_rows(9, device_prefix="big"), one_hot([0] * 9), np.zeros(9, dtype=np.int64)
    )
    assert [e["device_id"] for e in board.events()] == [f"big-{i}" for i in range(8, 3, -1)]


def test_recent_alerts_are_bounded_and_newest_first() -> None:
    board = StatusBoard(LABELS, max_alerts=3)
    alerts = [
        Alert(f"dev-{i}", "r", "run", (0.9, 0.8), 0, 1, 2, 3, ("a", "b"), 1000.0 + i)
        for i in range(5)
    ]
    board.add_alerts(alerts)
    shown = board.alerts()
    assert [a["device_id"] for a in shown] == ["dev-4", "dev-3", "dev-2"]
    assert shown[0]["windows"] == 2 and shown[0]["fired_ms"] == 1_004_000
    assert abs(shown[0]["min_score"] - 0.8) < 1e-9


def test_rates_are_deltas_over_the_recent_past_not_lifetime_averages() -> None:
    clock = [100.0]
    board = StatusBoard(LABELS, clock=lambda: clock[0])
    clock[0] = 110.0
    assert board.rates(records=1000, windows=10)["records_per_s"] == 100.0  # since start
    clock[0] = 116.0
    board.rates(records=1600, windows=70)
    clock[0] = 118.0
    rates = board.rates(records=1800, windows=90)  # over [110, 118]: the start has aged out
    assert (rates["records_per_s"], rates["windows_per_s"], rates["over_s"]) == (100.0, 10.0, 8.0)
    clock[0] = 130.0
    rates = board.rates(records=1800, windows=90)  # nothing new for 12 s
    assert rates["records_per_s"] == 0.0 and rates["windows_per_s"] == 0.0
