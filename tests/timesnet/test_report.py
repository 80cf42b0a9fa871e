"""Evaluation report numbers against a hand-computed example, its text and its PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from timesnet.errors import ModelError
from timesnet.report import evaluate_predictions, save_confusion_png

LABELS = ("walk", "run", "sit", "jump")
# 10 cases. True/predicted pairs chosen so every branch shows up:
# "jump" is never true and never predicted (all of its ratios are 0/0 -> 0.0).
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 0, 1, 1, 1, 2, 2, 0, 2]


@pytest.fixture()
def report():
    return evaluate_predictions(np.array(Y_TRUE), np.array(Y_PRED), LABELS)


def test_numbers_match_the_hand_computation(report) -> None:
    # confusion (rows true): walk 3 1 0 0 / run 0 2 1 0 / sit 1 0 2 0 / jump 0 0 0 0
    assert report.confusion_matrix == [[3, 1, 0, 0], [0, 2, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert report.n == 10
    assert report.accuracy == pytest.approx(7 / 10)
    # walk: P 3/4 R 3/4 F1 3/4; run: P 2/3 R 2/3 F1 2/3; sit: P 2/3 R 2/3 F1 2/3; jump 0
    expected = {
        "walk": (0.75, 0.75, 0.75, 4),
        "run": (2 / 3, 2 / 3, 2 / 3, 3),
        "sit": (2 / 3, 2 / 3, 2 / 3, 3),
        "jump": (0.0, 0.0, 0.0, 0),
    }
    for label, (precision, recall, f1, support) in expected.items():
        scores = report.per_class[label]
        assert scores["precision"] == pytest.approx(precision)
        assert scores["recall"] == pytest.approx(recall)
        assert scores["f1"] == pytest.approx(f1)
        assert scores["support"] == support
    assert report.macro_f1 == pytest.approx((0.75 + 2 / 3 + 2 / 3 + 0.0) / 4)


def test_f1_differs_from_precision_when_recall_differs() -> None:
    report = evaluate_predictions([0, 0, 1, 1], [0, 0, 0, 1], ("a", "b"))
    # a: P 2/3 R 1 -> F1 0.8; b: P 1 R 1/2 -> F1 2/3
    assert report.per_class["a"]["f1"] == pytest.approx(0.8)
    assert report.per_class["b"]["f1"] == pytest.approx(2 / 3)
    assert report.macro_f1 == pytest.approx((0.8 + 2 / 3) / 2)


def test_to_dict_is_json_ready_and_complete(report) -> None:
    d = json.loads(json.dumps(report.to_dict()))
    assert set(d) == {"labels", "accuracy", "macro_f1", "per_class", "confusion_matrix", "n"}
    assert d["labels"] == list(LABELS)
    assert d["per_class"]["run"]["support"] == 3
    assert d["confusion_matrix"][2] == [1, 0, 2, 0]


def test_to_text_has_every_class_row_and_the_matrix_aligned(report) -> None:
    text = report.to_text()
    assert "accuracy 0.7000" in text
    assert "macro F1 0.5208" in text
    lines = text.splitlines()
    walk_rows = [line for line in lines if line.startswith("walk")]
    assert walk_rows[0].split() == ["walk", "0.7500", "0.7500", "0.7500", "4"]
    assert walk_rows[1].split() == ["walk", "3", "1", "0", "0"]
    matrix = lines[lines.index("confusion matrix (rows true, columns predicted)") + 1 :]
    assert len(matrix) == 1 + len(LABELS)
    assert len({len(line) for line in matrix}) == 1


def test_bad_inputs_say_what_is_wrong() -> None:
    with pytest.raises(ModelError, match="pair up"):
        evaluate_predictions([0, 1], [0], ("a", "b"))
    with pytest.raises(ModelError, match="empty"):
        evaluate_predictions([], [], ("a", "b"))
    with pytest.raises(ModelError, match=r"predicted class ids must be in \[0, 2\)"):
        evaluate_predictions([0, 1], [0, 2], ("a", "b"))


def test_confusion_png_is_written_and_is_a_png(report, tmp_path: Path) -> None:
    path = tmp_path / "confusion.png"
    save_confusion_png(report, path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 5_000
