"""Per-channel normalization, fitted on the training split only and shipped in the manifest.

The worker applies the same mean and std to live windows, so the numbers must travel
with the model (``to_dict`` / ``from_dict``) rather than be recomputed from data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from timesnet.errors import ModelError

# Below this a channel is treated as constant: dividing by its std would blow
# float noise up to unit scale, so it is only centred (std stored as 1).
_MIN_STD = 1e-6


@dataclass(frozen=True)
class Normalization:
    """Per-channel (x - mean) / std with mean and std float32 [C]."""

    mean: np.ndarray  # float32 [C]
    std: np.ndarray  # float32 [C], every entry > 0

    def __post_init__(self) -> None:
        mean = np.array(self.mean, dtype=np.float32).reshape(-1)
        std = np.array(self.std, dtype=np.float32).reshape(-1)
        if mean.shape != std.shape or mean.size == 0:
            raise ModelError(
                f"normalization needs one mean and one std per channel, got {mean.size} means "
                f"and {std.size} stds"
            )
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ModelError("normalization mean must be finite and std finite and positive")
        # Frozen dataclass: keep read-only float32 copies so nobody edits a shipped model's stats.
        mean.setflags(write=False)
        std.setflags(write=False)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def n_channels(self) -> int:
        """C, the number of channels this normalization expects."""
        return int(self.mean.size)

    @classmethod
    def fit(cls, x: np.ndarray) -> Normalization:
        """Mean and std per channel over all cases and steps of x [N, L, C]."""
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[0] * x.shape[1] == 0:
            raise ModelError(f"fit needs a non-empty array [N, L, C], got shape {x.shape}")
        flat = x.reshape(-1, x.shape[2]).astype(np.float64)  # [N*L, C]
        if not np.isfinite(flat).all():
            raise ModelError("cannot fit normalization on data with NaN or infinite values")
        mean = flat.mean(axis=0)
        std = flat.std(axis=0)
        std = np.where(std < _MIN_STD, 1.0, std)
        return cls(mean=mean.astype(np.float32), std=std.astype(np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Normalized float32 copy of x [..., C]; the input is never modified."""
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.mean.size:
            raise ModelError(
                f"expected {self.mean.size} channels in the last axis, got shape {x.shape}"
            )
        # Arithmetic makes a new array, so the caller's input stays untouched.
        return (x.astype(np.float32, copy=False) - self.mean) / self.std  # [..., C]

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready form for the model manifest."""
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normalization:
        """Inverse of ``to_dict``; a clear error when the manifest entry is malformed."""
        try:
            return cls(
                mean=np.asarray(d["mean"], dtype=np.float32),
                std=np.asarray(d["std"], dtype=np.float32),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"manifest normalization must be {{'mean': [...], 'std': [...]}}: {exc}"
            ) from exc
