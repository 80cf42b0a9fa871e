"""Training-time augmentation of normalized windows [B, L, C] (numpy, seeded Generator only).

120 UWave cases are too few for TimesNet: without augmentation it memorizes the
training set within ~10 epochs. Each transform here is a plausible change of the
same gesture: a different sensor gain (scaling), sensor noise (jitter), starting the
gesture a little earlier or later (time shift), and a slowly varying gain
(magnitude warp). Mixup blends pairs of cases and their targets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each transform; 0 turns that transform off."""

    scale_std: float = 0.1
    jitter_std: float = 0.03
    max_shift: int = 20  # samples
    warp_std: float = 0.1
    warp_knots: int = 4
    mixup_alpha: float = 0.2

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return asdict(self)


def augment_batch(
    x: npt.NDArray[np.float32], rng: np.random.Generator, config: AugmentConfig
) -> npt.NDArray[np.float32]:
    """Scale, jitter, shift and warp each window of x [B, L, C]; returns a new array."""
    batch, length, channels = x.shape
    out = np.array(x, dtype=np.float32, copy=True)
    if config.max_shift > 0:
        shifts = rng.integers(-config.max_shift, config.max_shift + 1, size=(batch,))
        out = np.stack([_shift(window, int(s)) for window, s in zip(out, shifts, strict=True)])
    if config.scale_std > 0:
        out *= rng.normal(1.0, config.scale_std, size=(batch, 1, channels)).astype(np.float32)
    if config.warp_std > 0:
        out *= _warp_curves(batch, length, channels, rng, config)
    if config.jitter_std > 0:
        out += rng.normal(0.0, config.jitter_std, size=out.shape).astype(np.float32)
    return out


def mixup(
    x: npt.NDArray[np.float32],
    targets: npt.NDArray[np.float32],
    rng: np.random.Generator,
    alpha: float,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Blend each case with a random partner: x [B, L, C], soft targets [B, K]."""
    if alpha <= 0:
        return x, targets
    weight = rng.beta(alpha, alpha, size=(x.shape[0], 1)).astype(np.float32)  # [B, 1]
    partner = rng.permutation(x.shape[0])
    mixed_x = weight[:, :, None] * x + (1.0 - weight[:, :, None]) * x[partner]
    mixed_targets = weight * targets + (1.0 - weight) * targets[partner]
    return mixed_x.astype(np.float32), mixed_targets.astype(np.float32)


def _shift(window: npt.NDArray[np.float32], shift: int) -> npt.NDArray[np.float32]:
    """Move window [L, C] by `shift` samples, repeating the edge sample into the gap."""
    if shift == 0:
        return window
    out = np.empty_like(window)
    if shift > 0:
        out[shift:] = window[:-shift]
        out[:shift] = window[:1]
    else:
        out[:shift] = window[-shift:]
        out[shift:] = window[-1:]
    return out


def _warp_curves(
    batch: int, length: int, channels: int, rng: np.random.Generator, config: AugmentConfig
) -> npt.NDArray[np.float32]:
    """Smooth multiplicative curves [B, L, C] through random knots around 1."""
    knot_positions = np.linspace(0, length - 1, config.warp_knots + 2)
    knot_values = rng.normal(1.0, config.warp_std, size=(batch, channels, knot_positions.size))
    grid = np.arange(length)
    curves = np.empty((batch, length, channels), dtype=np.float32)
    for b in range(batch):
        for c in range(channels):
            curves[b, :, c] = np.interp(grid, knot_positions, knot_values[b, c])
    return curves
