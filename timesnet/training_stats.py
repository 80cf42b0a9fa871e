"""What the training data looked like, for drift checks: decile bins per channel, label shares.

A model's manifest may carry these (``training_stats``); the worker compares the
samples and the labels it sees against them (population stability index, see
stream/core/drift.py). They are computed on the RAW training samples, before the
normalization the predictor applies, because raw samples are what the worker
reads from Kafka. Padding a case to the window length repeats its first sample
(timesnet/dataset.py); those repeats are not data and are left out.

Bins: the 9 inner decile edges of each channel, rounded to float32 (the samples'
own precision, so that training and serving put a value on the same side of an
edge). Bin b of a channel holds the values x with ``edges[b - 1] <= x < edges[b]``
(`np.searchsorted(..., side="right")`), bin 0 everything below the first edge and
bin 9 everything from the last. A channel with many equal values can have equal
edges; the bins between them stay empty in training and in serving alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from timesnet.dataset import Dataset

QUANTILES = tuple(q / 10 for q in range(1, 10))  # deciles: 9 inner edges, 10 bins
MAX_EDGES = 99  # a manifest may carry finer bins (percentiles at most)
SHARE_TOLERANCE = 1e-6  # proportions are counts / total: they sum to 1 up to rounding


@dataclass(frozen=True)
class TrainingStats:
    """Per-channel bin edges [C][E] and training shares [C][E + 1]; label shares [K].

    Plain tuples, so that manifests compare and hash as values; `edge_array` and
    `proportion_array` give the numpy forms.
    """

    edges: tuple[tuple[float, ...], ...]  # [C][E] float32 values, non-decreasing per channel
    proportions: tuple[tuple[float, ...], ...]  # [C][E + 1], each row sums to 1
    label_proportions: tuple[float, ...]  # [K], in the manifest's label order
    samples: int  # raw samples per channel the bins were fitted on
    cases: int  # labelled cases the label shares come from

    @property
    def channels(self) -> int:
        """C, the number of channels."""
        return len(self.edges)

    def edge_array(self) -> npt.NDArray[np.float32]:
        """Edges [C, E] float32."""
        return np.asarray(self.edges, dtype=np.float32).reshape(self.channels, -1)

    def proportion_array(self) -> npt.NDArray[np.float64]:
        """Training shares [C, E + 1]."""
        return np.asarray(self.proportions, dtype=np.float64).reshape(self.channels, -1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: one {"edges", "proportions"} object per channel, then the label shares."""
        return {
            "samples": self.samples,
            "cases": self.cases,
            "channels": [
                {"edges": list(edges), "proportions": list(shares)}
                for edges, shares in zip(self.edges, self.proportions, strict=True)
            ],
            "label_proportions": list(self.label_proportions),
        }

    @classmethod
    def from_dict(cls, value: Any, channels: int, classes: int) -> TrainingStats:
        """Check and build from `to_dict` output; ValueError names the first field out of bounds."""
        if not isinstance(value, dict):
            raise ValueError("training_stats must be a JSON object or null")
        samples = _count(value, "samples")
        cases = _count(value, "cases")
        rows = value.get("channels")
        if not isinstance(rows, list) or len(rows) != channels:
            raise ValueError(
                f"training_stats.channels must list {channels} objects (one per channel)"
            )
        edges = [_edges(row, c) for c, row in enumerate(rows)]
        if len({len(e) for e in edges}) != 1:
            raise ValueError("training_stats.channels: every channel needs as many edges")
        shares = [_shares(row, c, len(edges[c]) + 1) for c, row in enumerate(rows)]
        labels = _share_list(
            value.get("label_proportions"), "training_stats.label_proportions", classes
        )
        return cls(
            edges=tuple(tuple(float(np.float32(e)) for e in row) for row in edges),
            proportions=tuple(tuple(float(p) for p in row) for row in shares),
            label_proportions=tuple(float(p) for p in labels),
            samples=samples,
            cases=cases,
        )


def bin_counts(values: npt.NDArray[np.float32], edges: npt.NDArray[np.float32]) -> npt.NDArray:
    """Counts [C, E + 1] of samples `values` [N, C] in each channel's bins (module docstring)."""
    channels, inner = edges.shape
    bins = inner + 1
    if values.ndim != 2 or values.shape[1] != channels:
        raise ValueError(f"values: expected shape [N, {channels}], got {list(values.shape)}")
    index = np.empty(values.shape, dtype=np.intp)  # [N, C] bin of each value
    for c in range(channels):
        index[:, c] = np.searchsorted(edges[c], values[:, c], side="right")
    index += np.arange(channels, dtype=np.intp) * bins  # channel c's bins at c * bins
    return np.bincount(index.ravel(), minlength=channels * bins).reshape(channels, bins)


def fit_training_stats(
    x: npt.NDArray[np.float32],
    lengths: npt.NDArray[np.int64],
    y: npt.NDArray[np.int64],
    classes: int,
) -> TrainingStats:
    """Stats of cases x [N, L, C] (original lengths [N], before padding) with labels y [N]."""
    window_length = x.shape[1]
    real = np.minimum(np.asarray(lengths), window_length)  # [N] samples that are data
    # a padded case has its repeats first: its data is its last `real` samples
    kept = np.arange(window_length)[None, :] >= (window_length - real)[:, None]  # [N, L]
    samples = np.asarray(x, dtype=np.float32)[kept]  # [S, C]
    if not len(samples):
        raise ValueError("training statistics need at least one sample")
    quantiles = np.quantile(samples.astype(np.float64), QUANTILES, axis=0)  # [E, C]
    edges = np.ascontiguousarray(quantiles.T.astype(np.float32))  # [C, E]
    counts = bin_counts(samples, edges)  # [C, E + 1]
    label_counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=classes)
    if len(label_counts) != classes or not len(y):
        raise ValueError(f"labels must be class ids in 0..{classes - 1}, at least one")
    return TrainingStats(
        edges=tuple(tuple(row) for row in edges.tolist()),
        proportions=tuple(tuple(row) for row in (counts / len(samples)).tolist()),
        label_proportions=tuple((label_counts / len(y)).tolist()),
        samples=len(samples),
        cases=len(y),
    )


def dataset_stats(dataset: Dataset) -> TrainingStats:
    """`fit_training_stats` of a labelled dataset (ValueError when it has no labels)."""
    if dataset.y is None:
        raise ValueError("training statistics need a labelled file (the label shares)")
    return fit_training_stats(dataset.x, dataset.lengths, dataset.y, len(dataset.labels))


def _count(value: dict, key: str) -> int:
    number = value.get(key)
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 2**53:
        raise ValueError(f"training_stats.{key} must be a positive integer")
    return number


def _edges(row: Any, channel: int) -> list[float]:
    where = f"training_stats.channels[{channel}].edges"
    edges = row.get("edges") if isinstance(row, dict) else None
    if (
        not isinstance(edges, list)
        or not 1 <= len(edges) <= MAX_EDGES
        or not all(_finite(e) for e in edges)
    ):
        raise ValueError(f"{where} must list 1..{MAX_EDGES} finite numbers")
    if any(b < a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"{where} must not decrease")
    return edges


def _shares(row: dict, channel: int, bins: int) -> list[float]:
    where = f"training_stats.channels[{channel}].proportions"
    return _share_list(row.get("proportions"), where, bins)


def _share_list(shares: Any, where: str, count: int) -> list[float]:
    if (
        not isinstance(shares, list)
        or len(shares) != count
        or not all(_finite(p) and 0.0 <= p <= 1.0 for p in shares)
        or abs(math.fsum(shares) - 1.0) > SHARE_TOLERANCE
    ):
        raise ValueError(f"{where} must list {count} shares in [0, 1] that sum to 1")
    return shares


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
