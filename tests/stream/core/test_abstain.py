"""Abstaining: the decision against a row-by-row reference, then what one produced batch
teaches the events, the metrics, the status board and the label alerts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from stream.config.schema import AlertRule, Config, ModelConfig
from stream.core.abstain import ABSTAINED, decide
from stream.core.columns import WindowRows
from stream.core.event_output import EventOutput
from stream.core.inference import Classified
from stream.core.metrics import WorkerMetrics
from stream.core.offsets import OffsetTracker
from stream.core.stats import WorkerStats
from stream.core.status_board import StatusBoard
from tests.stream.rows import make_rows
from timesnet.manifest import load_manifest

MANIFEST = load_manifest(Path(__file__).resolve().parents[3] / "models" / "uwave")
LABELS = MANIFEST.labels  # "1.0" .. "8.0"


@settings(max_examples=100, deadline=None)
@given(
    probabilities=hnp.arrays(
        np.float32, st.tuples(st.integers(0, 12), st.integers(1, 6)), elements=st.floats(0, 1)
    ),
    min_score=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]),
)
def test_decide_agrees_with_one_window_at_a_time(
    probabilities: np.ndarray, min_score: float
) -> None:
    decisions = decide(probabilities, min_score)
    for w, row in enumerate(probabilities.tolist()):
        top = row.index(max(row))  # the first of equal maxima, as argmax
        score = np.float32(row[top])
        abstained = bool(score < np.float32(min_score))
        assert decisions.top_ids[w] == top
        assert decisions.scores[w] == score
        assert decisions.abstained[w] == abstained
        assert decisions.class_ids[w] == (ABSTAINED if abstained else top)


def test_min_score_zero_never_abstains_and_the_boundary_is_float32() -> None:
    probabilities = np.array([[0.0, 0.0], [0.3, 0.7]], dtype=np.float32)
    assert not decide(probabilities, 0.0).abstained.any()
    # 0.7 as float32 is 0.69999999; a min_score written as 0.7 must not abstain on it
    assert decide(probabilities[1:], 0.7).abstained.tolist() == [False]
    assert decide(probabilities[1:], 0.70001).abstained.tolist() == [True]


class FakeProducer:
    """What EventOutput sends, by topic."""

    max_request_bytes = 1_048_576

    def __init__(self) -> None:
        self.sent: dict[str, list[bytes]] = {}

    def send(self, topic: str, value: bytes, key: bytes | None = None, headers=None) -> None:
        self.sent.setdefault(topic, []).append(value)


def output(min_score: float, rules: tuple[AlertRule, ...] = ()) -> tuple[EventOutput, Config]:
    config = Config(model=ModelConfig(min_score=min_score, abstain_label="unsure"), alerts=rules)
    offsets = OffsetTracker()
    offsets.assign(TopicPartition("samples", 0), None)
    board = StatusBoard([*LABELS, config.model.abstain_label])
    metrics = WorkerMetrics(CollectorRegistry())
    out = EventOutput(config, MANIFEST, offsets, metrics, WorkerStats(), board, {})
    return out, config


class ManifestOnly:
    """A predictor as far as EventOutput looks at it: the model that classified the batch."""

    manifest = MANIFEST


def classified(rows: WindowRows, probabilities: np.ndarray) -> Classified:
    return Classified(rows, 0, probabilities, 0.01, ManifestOnly())  # type: ignore[arg-type]


def one_hot(rows: list[tuple[int, float]]) -> np.ndarray:
    """[W, 8] probabilities: class c gets p, the rest share 1 - p."""
    probabilities = np.zeros((len(rows), len(LABELS)), dtype=np.float32)
    for w, (c, p) in enumerate(rows):
        probabilities[w] = (1 - p) / (len(LABELS) - 1)
        probabilities[w, c] = p
    return probabilities


def test_abstained_windows_are_events_counts_and_status_under_the_abstain_label() -> None:
    out, config = output(min_score=0.6)
    producer = FakeProducer()
    probabilities = one_hot([(2, 0.9), (4, 0.5), (4, 0.95)])
    out.produce(classified(make_rows(3), probabilities), producer)  # type: ignore[arg-type]

    events = [orjson.loads(v) for v in producer.sent[config.kafka.output_topic]]
    assert [e["label"] for e in events] == ["3.0", "unsure", "5.0"]
    assert [e["class_id"] for e in events] == [2, -1, 4]
    assert [e["abstained"] for e in events] == [False, True, False]
    assert [e.get("top_label") for e in events] == [None, "5.0", None]
    assert events[1]["score"] == pytest.approx(0.5)
    np.testing.assert_array_equal(np.float32(events[1]["probabilities"]), probabilities[1])

    counted = {
        s.labels["label"]: s.value
        for family in out.metrics.events.collect()
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert counted == {"3.0": 1.0, "unsure": 1.0, "5.0": 1.0}
    assert out.stats.events_by_label == {"3.0": 1, "unsure": 1, "5.0": 1}
    shown = {e["device_id"]: (e["label"], e["score"]) for e in out.board.events()}
    assert shown == {"dev-0": ("3.0", 0.9), "dev-1": ("unsure", 0.5), "dev-2": ("5.0", 0.95)}


def same_device(count: int) -> WindowRows:
    return replace(make_rows(count), device_ids=["glove"] * count)


@pytest.mark.parametrize(
    ("min_score", "fired"),
    [
        (0.0, 1),  # three confident 5.0 windows in a row: the rule fires
        (0.6, 0),  # the middle one abstains: the run is broken, never two in a row
    ],
)
def test_an_abstained_window_never_matches_a_label_alert(min_score: float, fired: int) -> None:
    rule = AlertRule(name="five", label="5.0", min_score=0.0, min_consecutive=2)
    out, config = output(min_score, (rule,))
    producer = FakeProducer()
    probabilities = one_hot([(4, 0.9), (4, 0.5), (4, 0.9)])
    out.produce(classified(same_device(3), probabilities), producer)  # type: ignore[arg-type]
    alerts = [orjson.loads(v) for v in producer.sent.get(config.kafka.alerts_topic, [])]
    assert len(alerts) == fired


def test_an_abstain_rule_can_never_be_written() -> None:
    # a rule's label must be a model label (start-up), the abstain label never is
    from stream.config.model_checks import check_abstain_label, check_rules_against_labels
    from stream.errors import ConfigError

    with pytest.raises(ConfigError, match="alerts\\[0\\].label: unknown label 'unsure'"):
        check_rules_against_labels([AlertRule(name="r", label="unsure")], LABELS)
    with pytest.raises(ConfigError, match="model.abstain_label"):
        check_abstain_label(ModelConfig(abstain_label="5.0"), LABELS)
