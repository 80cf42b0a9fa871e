"""Classification metrics for a test set: accuracy, macro F1, per-class scores, confusion matrix.

Conventions (those of scikit-learn's defaults, so numbers compare): a ratio whose
denominator is zero (a class never predicted, or absent from the test set) is 0.0,
and macro F1 averages over every label of the model, including absent ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from timesnet.errors import ModelError


@dataclass(frozen=True)
class EvaluationReport:
    """Scores of predicted against true class ids over n cases."""

    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # label -> precision, recall, f1, support
    confusion_matrix: list[list[int]]  # [K, K], rows true, columns predicted
    n: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (plain floats, ints and lists)."""
        return {
            "labels": list(self.labels),
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": {label: dict(scores) for label, scores in self.per_class.items()},
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
            "n": self.n,
        }

    def to_text(self) -> str:
        """A per-class table and the confusion matrix, aligned for a terminal."""
        width = max(8, *(len(label) for label in self.labels))
        lines = [
            f"cases {self.n}   accuracy {self.accuracy:.4f}   macro F1 {self.macro_f1:.4f}",
            "",
            f"{'class':<{width}}  precision  recall      f1  support",
        ]
        for label in self.labels:
            s = self.per_class[label]
            lines.append(
                f"{label:<{width}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}"
                f"  {int(s['support']):7d}"
            )
        lines += ["", "confusion matrix (rows true, columns predicted)"]
        cell = max(len(str(self.n)), *(len(label) for label in self.labels))
        lines.append(" " * width + "".join(f"  {label:>{cell}}" for label in self.labels))
        for label, row in zip(self.labels, self.confusion_matrix, strict=True):
            lines.append(f"{label:<{width}}" + "".join(f"  {count:>{cell}d}" for count in row))
        return "\n".join(lines)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator elementwise, 0.0 where the denominator is 0."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def evaluate_predictions(
    y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], labels: Sequence[str]
) -> EvaluationReport:
    """Score predicted class ids [N] against true ids [N], both indexing ``labels``."""
    true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    k = len(labels)
    if true.shape != pred.shape:
        raise ModelError(f"{true.size} true labels but {pred.size} predictions; they must pair up")
    if true.size == 0:
        raise ModelError("no predictions to evaluate; the test set is empty")
    for name, ids in (("true", true), ("predicted", pred)):
        if ids.min() < 0 or ids.max() >= k:
            raise ModelError(
                f"{name} class ids must be in [0, {k}) for {k} labels, "
                f"found {ids.min()}..{ids.max()}"
            )
    cm = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)  # [K true, K predicted]
    hits = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    precision = _ratio(hits, cm.sum(axis=0))
    recall = _ratio(hits, support)
    f1 = _ratio(2.0 * precision * recall, precision + recall)
    per_class = {
        str(label): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": float(support[i]),
        }
        for i, label in enumerate(labels)
    }
    return EvaluationReport(
        labels=tuple(str(label) for label in labels),
        accuracy=float(hits.sum() / true.size),
        macro_f1=float(f1.mean()),
        per_class=per_class,
        confusion_matrix=cm.tolist(),
        n=int(true.size),
    )


def save_confusion_png(report: EvaluationReport, path: str | Path) -> None:
    """Write the confusion matrix as an annotated heatmap PNG (rows true, columns predicted)."""
    # A bare Figure renders with Agg and leaves pyplot's global backend state alone.
    from matplotlib.figure import Figure

    cm = np.asarray(report.confusion_matrix, dtype=np.int64)  # [K, K]
    k = len(report.labels)
    size = max(4.0, 0.6 * k + 2.0)
    fig = Figure(figsize=(size, size * 0.9))
    ax = fig.subplots()
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), labels=report.labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=report.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {report.accuracy:.3f}, macro F1 {report.macro_f1:.3f}, n={report.n}")
    threshold = cm.max() / 2.0 if cm.size else 0.0
    for i in range(k):
        for j in range(k):
            color = "white" if cm[i, j] > threshold else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color, fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=120)
