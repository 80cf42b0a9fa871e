"""Label alerts: the run/cooldown table, and agreement with a naive reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.config.schema import AlertRule
from stream.core.alerts import Alert, AlertEvaluator

LABELS = ("1.0", "2.0", "3.0")


@dataclass(frozen=True)
class W:
    """A labeled window for the tables: device, label, score; timestamps come from its index."""

    device: str
    label: str
    score: float


def feed(
    evaluator: AlertEvaluator,
    windows: Sequence[W],
    batches: Sequence[int] | None = None,
    now_s: Sequence[float] | None = None,
    first_index: int = 0,
) -> list[Alert]:
    """Evaluate `windows` in batches of the given sizes (one batch by default); window i
    (counting from `first_index`) gets event id e<i> and timestamps from i."""
    sizes = list(batches or [len(windows)])
    times = list(now_s or [1000.0 + i for i in range(len(sizes))])
    alerts: list[Alert] = []
    first = 0
    for size, now in zip(sizes, times, strict=True):
        part = windows[first : first + size]
        index = np.arange(first, first + len(part), dtype=np.int64) + first_index
        alerts += evaluator.evaluate(
            [w.device for w in part],
            [w.label for w in part],
            np.asarray([w.score for w in part], dtype=np.float32),
            index * 1000,
            index * 1000 + 999,
            [f"e{i}" for i in index.tolist()],
            now,
        )
        first += size
    assert first == len(windows), "batch sizes must cover every window"
    return alerts


def fired(alerts: Sequence[Alert]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(device, rule, event ids) of each alert, in order."""
    return [(a.device_id, a.rule, a.event_ids) for a in alerts]


def ids(*indexes: int) -> tuple[str, ...]:
    return tuple(f"e{i}" for i in indexes)


def rule(**fields: object) -> AlertRule:
    return AlertRule(**{"name": "r", "label": "1.0", **fields})


A1 = W("a", "1.0", 0.9)  # matches the default rule
A2 = W("a", "2.0", 0.9)  # other label: breaks a's run
B1 = W("b", "1.0", 0.9)
A1_LOW = W("a", "1.0", 0.4)

CASES = [
    # id, rules, windows, batch sizes, batch times, expected (device, rule, event ids)
    ("one window fires at once", [rule()], [A1], None, None, [("a", "r", ids(0))]),
    ("other label never fires", [rule()], [A2, A2], None, None, []),
    ("two in a row needed, one is not enough", [rule(min_consecutive=2)], [A1], None, None, []),
    (
        "two in a row fire with both windows",
        [rule(min_consecutive=2)],
        [A1, A1],
        None,
        None,
        [("a", "r", ids(0, 1))],
    ),
    (
        "a non-matching window resets the run",
        [rule(min_consecutive=2)],
        [A1, A2, A1],
        None,
        None,
        [],
    ),
    (
        "a score below the range resets the run",
        [rule(min_consecutive=2, min_score=0.5)],
        [A1, A1_LOW, A1, A1],
        None,
        None,
        [("a", "r", ids(2, 3))],
    ),
    (
        "a score above max_score does not match",
        [rule(max_score=0.5)],
        [A1, A1_LOW],
        None,
        None,
        [("a", "r", ids(1))],
    ),
    (
        "the run restarts after firing",
        [rule(min_consecutive=2)],
        [A1] * 5,
        None,
        None,
        [("a", "r", ids(0, 1)), ("a", "r", ids(2, 3))],
    ),
    (
        "devices keep separate runs when interleaved",
        [rule(min_consecutive=2)],
        [A1, B1, A1, B1],
        None,
        None,
        [("a", "r", ids(0, 2)), ("b", "r", ids(1, 3))],
    ),
    (
        "another device's miss does not break a run",
        [rule(min_consecutive=2)],
        [A1, W("b", "2.0", 0.9), A1],
        None,
        None,
        [("a", "r", ids(0, 2))],
    ),
    (
        "runs carry over from one batch to the next",
        [rule(min_consecutive=3)],
        [A1, A1, A1],
        [1, 1, 1],
        None,
        [("a", "r", ids(0, 1, 2))],
    ),
    (
        "a reset in a later batch is seen",
        [rule(min_consecutive=2)],
        [A1, A2, A1],
        [1, 1, 1],
        None,
        [],
    ),
    (
        "cooldown holds back a second firing in the same batch",
        [rule(cooldown_s=60.0)],
        [A1, A1, A1],
        None,
        None,
        [("a", "r", ids(0))],
    ),
    (
        "cooldown over: fires again",
        [rule(cooldown_s=60.0)],
        [A1, A1, A1],
        [1, 1, 1],
        [0.0, 30.0, 60.0],
        [("a", "r", ids(0)), ("a", "r", ids(2))],
    ),
    (
        "after a held-back run the latest windows fire",
        [rule(min_consecutive=2, cooldown_s=10.0)],
        [A1, A1, A1, A1, A1],
        [2, 2, 1],
        [0.0, 5.0, 20.0],
        [("a", "r", ids(0, 1)), ("a", "r", ids(3, 4))],
    ),
    (
        "cooldown is per device",
        [rule(cooldown_s=60.0)],
        [A1, B1],
        None,
        None,
        [("a", "r", ids(0)), ("b", "r", ids(1))],
    ),
    (
        "two rules on one window fire in rule order",
        [rule(name="any"), rule(name="sure", min_score=0.8)],
        [A1, A1_LOW],
        None,
        None,
        [("a", "any", ids(0)), ("a", "sure", ids(0)), ("a", "any", ids(1))],
    ),
    (
        "rules on different labels",
        [rule(name="one"), rule(name="two", label="2.0")],
        [A1, A2],
        None,
        None,
        [("a", "one", ids(0)), ("a", "two", ids(1))],
    ),
]


@pytest.mark.parametrize(
    ("rules", "windows", "batches", "times", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_rules_fire_on_the_expected_runs(
    rules: list[AlertRule],
    windows: list[W],
    batches: list[int] | None,
    times: list[float] | None,
    expected: list[tuple[str, str, tuple[str, ...]]],
) -> None:
    assert fired(feed(AlertEvaluator(rules), windows, batches, times)) == expected


def test_score_range_is_inclusive_in_float32_as_events_show_it() -> None:
    # 0.9 as float32 is 0.89999998: a rule written "min_score = 0.9" must still match it
    evaluator = AlertEvaluator([rule(min_score=0.9, max_score=0.9)])
    alerts = feed(evaluator, [W("a", "1.0", 0.9)])
    assert len(alerts) == 1


def test_alert_carries_the_run_and_serializes_to_json() -> None:
    evaluator = AlertEvaluator([rule(name="fall", min_consecutive=2)])
    (alert,) = feed(evaluator, [W("a", "1.0", 0.75), W("a", "1.0", 0.5)], now_s=[1700000000.25])
    document = orjson.loads(alert.to_json())
    assert document == {
        "alert_id": alert.alert_id,
        "device_id": "a",
        "rule": "fall",
        "label": "1.0",
        "scores": [0.75, 0.5],
        "windows": 2,
        "first_window_start_ts": 0,
        "first_window_end_ts": 999,
        "last_window_start_ts": 1000,
        "last_window_end_ts": 1999,
        "event_ids": ["e0", "e1"],
        "fired_at": 1700000000250,
    }
    assert len(alert.alert_id) == 32


def test_scores_serialize_with_the_digits_events_use() -> None:
    (alert,) = feed(AlertEvaluator([rule()]), [W("a", "1.0", 0.9)])
    assert b'"scores":[0.9]' in alert.to_json()


def test_alert_id_is_deterministic_and_differs_per_rule() -> None:
    rules = [rule(name="x"), rule(name="y")]
    first = feed(AlertEvaluator(rules), [A1])
    again = feed(AlertEvaluator(rules), [A1])
    assert [a.alert_id for a in first] == [a.alert_id for a in again]
    assert first[0].alert_id != first[1].alert_id


def test_forget_devices_drops_their_runs() -> None:
    evaluator = AlertEvaluator([rule(min_consecutive=2)])
    feed(evaluator, [A1, B1])
    assert evaluator.state_entries == 2
    evaluator.forget_devices(["a"])
    assert evaluator.state_entries == 1
    # a's earlier window is gone: one more window is not a run of two
    assert fired(feed(evaluator, [A1, B1], first_index=2)) == [("b", "r", ids(1, 3))]


def test_state_holds_only_devices_in_a_run_or_cooling_down() -> None:
    evaluator = AlertEvaluator([rule(min_consecutive=3), rule(name="c", cooldown_s=5.0)])
    devices = [f"d{i}" for i in range(50)]
    feed(evaluator, [W(d, "1.0", 0.9) for d in devices], now_s=[0.0])
    assert evaluator.state_entries == 100  # every device: a run of 1, and a cooldown
    feed(evaluator, [W(d, "2.0", 0.9) for d in devices], now_s=[10.0])
    assert evaluator.state_entries == 0


def test_no_rules_and_empty_batches_fire_nothing() -> None:
    assert feed(AlertEvaluator([]), [A1]) == []
    assert feed(AlertEvaluator([rule()]), []) == []


def test_mismatched_argument_lengths_are_rejected() -> None:
    evaluator = AlertEvaluator([rule()])
    with pytest.raises(ValueError, match="one entry per window"):
        evaluator.evaluate(
            ["a"],
            ["1.0", "1.0"],
            np.ones(1),
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
            ["e"],
            0.0,
        )


def reference(
    rules: Sequence[AlertRule], batches: Sequence[Sequence[W]], times: Sequence[float]
) -> list[tuple[str, str, tuple[str, ...]]]:
    """The rules restated window by window, with unbounded runs."""
    runs: dict[tuple[str, int], list[str]] = {}
    last: dict[tuple[str, int], float] = {}
    out: list[tuple[str, str, tuple[str, ...]]] = []
    index = 0
    for batch, now in zip(batches, times, strict=True):
        for window in batch:
            event = f"e{index}"
            index += 1
            for r, rl in enumerate(rules):
                key = (window.device, r)
                score = np.float32(window.score)
                if window.label != rl.label or not (
                    np.float32(rl.min_score) <= score <= np.float32(rl.max_score)
                ):
                    runs.pop(key, None)
                    continue
                run = runs.setdefault(key, [])
                run.append(event)
                cooled = key not in last or now - last[key] >= rl.cooldown_s
                if len(run) >= rl.min_consecutive and cooled:
                    out.append((window.device, rl.name, tuple(run[-rl.min_consecutive :])))
                    last[key] = now
                    runs.pop(key)
    return out


windows_st = st.builds(
    W,
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(LABELS),
    st.sampled_from([0.1, 0.5, 0.7, 0.9, 1.0]),
)
rules_st = st.lists(
    st.builds(
        lambda label, low, width, n, cool: dict(
            label=label,
            min_score=low,
            max_score=min(1.0, low + width),
            min_consecutive=n,
            cooldown_s=cool,
        ),
        st.sampled_from(LABELS[:2]),
        st.sampled_from([0.0, 0.5, 0.7]),
        st.sampled_from([0.0, 0.3, 1.0]),
        st.integers(1, 4),
        st.sampled_from([0.0, 1.0, 3.0]),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(rules_st, st.lists(st.lists(windows_st, max_size=8), max_size=8))
def test_evaluator_agrees_with_a_window_by_window_reference(
    rule_fields: list[dict[str, object]], batches: list[list[W]]
) -> None:
    rules = [AlertRule(name=f"r{i}", **fields) for i, fields in enumerate(rule_fields)]
    times = [float(i) for i in range(len(batches))]
    windows = [w for batch in batches for w in batch]
    got = feed(AlertEvaluator(rules), windows, [len(b) for b in batches] or [0], times or [0.0])
    want = reference(rules, batches, times)
    # the evaluator orders a batch's alerts by window then rule, as the reference does
    assert fired(got) == want
