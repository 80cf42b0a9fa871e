"""The Python API PaddleX users expect: ``load_model(dir).predict(x)`` -> result objects.

``predict`` accepts a raw window ``[L, C]``, a batch ``[B, L, C]``, a path to a
``.ts`` or PaddleX ``.csv`` file, or a list mixing these. Files go through the same
reader and the same pad/crop rule as ``sensorstream predict`` (see
:mod:`timesnet.dataset`), and every window goes through the same predictor, so the
numbers are the CLI's. Arrays must already have the model's length and channels.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt

from timesnet.errors import ModelError
from timesnet.readers import read_dataset

if TYPE_CHECKING:
    from timesnet.batch_predictor import BatchPredictor
    from timesnet.manifest import ModelManifest
    from timesnet.predictor import Runtime

ARRAY_SOURCE = "<array>"

InputItem = str | Path | npt.NDArray[np.floating]
ModelInput = InputItem | Sequence[InputItem]


@dataclass(frozen=True)
class ClassificationResult:
    """One classified window: where it came from, its label, score and every probability."""

    index: int  # position among all results of one predict call
    source: str  # the file path, or "<array>" for numpy input
    case: int  # the window's position within its source (row of [B, L, C], case of a file)
    label: str
    class_id: int
    score: float  # probability of `label`
    probabilities: dict[str, float]  # label -> probability, in the model's label order

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict with every field."""
        return {
            "index": self.index,
            "source": self.source,
            "case": self.case,
            "label": self.label,
            "class_id": self.class_id,
            "score": self.score,
            "probabilities": dict(self.probabilities),
        }

    def summary(self) -> str:
        """A readable multi-line description of this result."""
        ranked = sorted(self.probabilities.items(), key=lambda item: -item[1])
        lines = [
            f"{self.source} case {self.case}: label {self.label} "
            f"(class_id {self.class_id}), score {self.score:.4f}"
        ]
        lines += [f"  {label:>12}  {probability:.4f}" for label, probability in ranked]
        return "\n".join(lines)

    def print(self) -> None:  # noqa: A003 - PaddleX result objects name it print
        """Write `summary()` to stdout, as PaddleX result objects do."""
        sys.stdout.write(self.summary() + "\n")

    def save_to_json(self, path: str | Path) -> Path:
        """Write `to_dict()` as JSON to `path` (a file, or a directory to name the file in)."""
        target = self._target(path, ".json")
        target.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return target

    def save_to_csv(self, path: str | Path) -> Path:
        """Write a header and one row (fields, then one probability column per label)."""
        target = self._target(path, ".csv")
        with target.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(csv_header(tuple(self.probabilities)))
            writer.writerow(self.csv_row())
        return target

    def csv_row(self) -> list[object]:
        """The values under `csv_header`, for writing many results into one file."""
        return [
            self.index,
            self.source,
            self.case,
            self.label,
            self.class_id,
            repr(self.score),
            *(repr(p) for p in self.probabilities.values()),
        ]

    def _target(self, path: str | Path, suffix: str) -> Path:
        """`path` itself, or `<dir>/<source stem>_<case>_res<suffix>` when it is a directory."""
        target = Path(path)
        if target.is_dir():
            stem = "array" if self.source == ARRAY_SOURCE else Path(self.source).stem
            target = target / f"{stem}_{self.case}_res{suffix}"
        return target


def csv_header(labels: Sequence[str]) -> list[str]:
    """Column names of `ClassificationResult.csv_row` for a model with `labels`."""
    return [
        "index",
        "source",
        "case",
        "label",
        "class_id",
        "score",
        *(f"probability_{label}" for label in labels),
    ]


def save_results_csv(results: Sequence[ClassificationResult], path: str | Path) -> Path:
    """Write many results into one CSV file (one row each, same columns as `save_to_csv`)."""
    if not results:
        raise ModelError("no results to save; predict something first")
    target = Path(path)
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(csv_header(tuple(results[0].probabilities)))
        writer.writerows(result.csv_row() for result in results)
    return target


class Model:
    """A loaded model directory: `predict` on arrays, files, or lists of them; `close` when done."""

    def __init__(self, predictor: BatchPredictor, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        self.predictor = predictor
        self.batch_size = batch_size

    @property
    def manifest(self) -> ModelManifest:
        """Name, version, labels, window length, channels of the loaded model."""
        return self.predictor.manifest

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in class_id order."""
        return self.manifest.labels

    def close(self) -> None:
        """Release the predictor; later predict calls raise ModelError. Closing twice is fine."""
        self.predictor.close()

    def predict(self, x: ModelInput, batch_size: int | None = None) -> list[ClassificationResult]:
        """Classify every window of `x` (array [L, C] / [B, L, C], file path, or a list)."""
        windows, origins = self._gather(x)  # [N, L, C], N x (source, case)
        probabilities = self.predict_proba(windows, batch_size)  # [N, K]
        labels = self.labels
        results: list[ClassificationResult] = []
        for index, (row, (source, case)) in enumerate(zip(probabilities, origins, strict=True)):
            class_id = int(row.argmax())
            results.append(
                ClassificationResult(
                    index=index,
                    source=source,
                    case=case,
                    label=labels[class_id],
                    class_id=class_id,
                    score=float(row[class_id]),
                    probabilities={label: float(p) for label, p in zip(labels, row, strict=True)},
                )
            )
        return results

    def predict_proba(
        self, windows: npt.ArrayLike, batch_size: int | None = None
    ) -> npt.NDArray[np.float32]:
        """Raw windows [N, L, C] -> probabilities float32 [N, K], `batch_size` at a time."""
        size = self.batch_size if batch_size is None else batch_size
        if size < 1:
            raise ModelError(f"batch_size must be >= 1, got {size}")
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim == 3 and x.shape[0] == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        parts = [self.predictor.predict_batch(x[i : i + size]) for i in range(0, len(x), size)]
        return np.concatenate(parts, axis=0)

    def _gather(self, x: ModelInput) -> tuple[npt.NDArray[np.float32], list[tuple[str, int]]]:
        """Every window of `x` stacked [N, L, C], with (source, case) for each."""
        # a list/tuple holds items; anything else (str, Path, array) is one item
        items = list(x) if isinstance(x, (list, tuple)) else [cast(InputItem, x)]
        if not items:
            raise ModelError("predict got an empty list; pass an array, a file path or a list")
        blocks: list[npt.NDArray[np.float32]] = []
        origins: list[tuple[str, int]] = []
        for item in items:
            block, source = self._windows_of(item)
            blocks.append(block)
            origins.extend((source, case) for case in range(len(block)))
        return np.concatenate(blocks, axis=0), origins

    def _windows_of(self, item: InputItem) -> tuple[npt.NDArray[np.float32], str]:
        """One input item -> (windows [n, L, C], source name)."""
        if isinstance(item, (str, Path)):
            return read_dataset(item, self.manifest.window_length).x, str(item)
        if isinstance(item, np.ndarray):
            return self._check_array(item), ARRAY_SOURCE
        raise ModelError(
            f"cannot predict a {type(item).__name__}; pass a numpy array "
            "[L, C] or [B, L, C], a .ts/.csv path, or a list of these"
        )

    def _check_array(self, array: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """[L, C] or [B, L, C] with the model's L and C, as float32 [B, L, C]."""
        length, channels = self.manifest.window_length, self.manifest.channels
        windows = array[None] if array.ndim == 2 else array
        if windows.ndim != 3 or windows.shape[1:] != (length, channels):
            raise ModelError(
                f"model {self.manifest.name} expects an array [{length}, {channels}] "
                f"or [batch, {length}, {channels}], got {list(array.shape)}; files "
                "are padded/cropped to the window length, arrays are not"
            )
        return windows.astype(np.float32, copy=False)


def load_model(
    model_dir: str | Path,
    device: str = "cpu",
    threads: int = 2,
    batch_size: int = 64,
    runtime: Runtime = "onnxruntime",
) -> Model:
    """Load a model directory (e.g. "models/uwave") on "cpu", "gpu" or "gpu:N".

    `runtime`: "onnxruntime" (default), "openvino" or "paddle" (timesnet/predictor.py).
    """
    from timesnet.predictor import load_predictor

    predictor = load_predictor(model_dir, device=device, threads=threads, runtime=runtime)
    return Model(predictor, batch_size)
