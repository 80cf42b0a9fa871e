"""TimesNet for classification in Paddle, with periods fixed at build time for batch invariance.

The reference TimesNet picks its top-k FFT frequencies from the amplitude spectrum
averaged over the whole batch, so a window's answer depends on its batch-mates. Here
the frequencies are chosen once, from the training set's spectrum, and stored in the
config; only the amplitude *weights* of those frequencies are computed per window,
which keeps the adaptive weighting and makes every window independent of its batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import paddle
import paddle.nn.functional as F
from paddle import nn

from timesnet.errors import ModelError


@dataclass(frozen=True)
class TimesNetConfig:
    """Hyperparameters of one TimesNet classifier; `frequencies` are FFT bins fixed at build."""

    window_length: int
    channels: int
    num_classes: int
    frequencies: tuple[int, ...]
    d_model: int = 32
    d_ff: int = 32
    e_layers: int = 2
    num_kernels: int = 3
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.window_length < 2 or self.channels < 1 or self.num_classes < 2:
            raise ModelError(
                f"window_length={self.window_length} channels={self.channels} "
                f"num_classes={self.num_classes}: need length >= 2, channels >= 1, classes >= 2"
            )
        if not self.frequencies:
            raise ModelError("frequencies is empty: give at least one FFT bin")
        highest = self.window_length // 2
        for bin_index in self.frequencies:
            if not 1 <= bin_index <= highest:
                raise ModelError(f"frequency bin {bin_index} outside 1..{highest}")
        object.__setattr__(self, "frequencies", tuple(int(f) for f in self.frequencies))

    @property
    def periods(self) -> tuple[int, ...]:
        """Period length in samples of each fixed frequency bin (window_length // bin)."""
        return tuple(self.window_length // f for f in self.frequencies)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; round-trips through `from_dict`."""
        data = asdict(self)
        data["frequencies"] = list(self.frequencies)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TimesNetConfig:
        """Build from `to_dict` output (lists become tuples)."""
        return cls(**{**data, "frequencies": tuple(data["frequencies"])})


def dominant_frequencies(x: npt.NDArray[np.float32], top_k: int) -> tuple[int, ...]:
    """Top-k FFT bins (DC excluded) of the mean amplitude spectrum of windows x [N, L, C]."""
    amplitude = np.abs(np.fft.rfft(np.asarray(x, dtype=np.float64), axis=1))  # [N, F, C]
    mean_amplitude = amplitude.mean(axis=(0, 2))  # [F]
    mean_amplitude[0] = 0.0  # the DC bin has no period
    order = np.argsort(-mean_amplitude, kind="stable")
    return tuple(sorted(int(i) for i in order[:top_k]))


class InceptionBlock(nn.Layer):
    """Mean of parallel Conv2D branches with odd kernels 1, 3, ..., 2*num_kernels-1."""

    def __init__(self, in_channels: int, out_channels: int, num_kernels: int) -> None:
        super().__init__()
        self.num_kernels = num_kernels
        self.branches = nn.LayerList(
            [
                nn.Conv2D(
                    in_channels,
                    out_channels,
                    kernel_size=2 * i + 1,
                    padding=i,
                    weight_attr=nn.initializer.KaimingNormal(),
                )
                for i in range(num_kernels)
            ]
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, Cin, H, W] -> [B, Cout, H, W]."""
        first, *rest = self.branches  # [1:] works, but Paddle types LayerList indices as int
        total = first(x)
        for branch in rest:
            total = total + branch(x)
        return total / self.num_kernels


class TimesBlock(nn.Layer):
    """Fold the series by each fixed period, convolve in 2D, unfold, mix by per-window amplitude."""

    def __init__(self, config: TimesNetConfig) -> None:
        super().__init__()
        self.window_length = config.window_length
        self.frequencies = config.frequencies
        self.periods = config.periods
        self.conv = nn.Sequential(
            InceptionBlock(config.d_model, config.d_ff, config.num_kernels),
            nn.GELU(),
            InceptionBlock(config.d_ff, config.d_model, config.num_kernels),
        )
        # derived from the config, so not persistable: state dicts and network.npz stay as they were
        self.register_buffer(
            "basis",
            paddle.to_tensor(dft_basis(config.window_length, config.frequencies)),
            persistable=False,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, L, D] -> [B, L, D]."""
        length = self.window_length
        channels_first = paddle.transpose(x, [0, 2, 1])  # [B, D, L]
        d_model = channels_first.shape[1]
        branches = []
        for period in self.periods:
            rows = math.ceil(length / period)
            padded = channels_first
            if rows * period != length:
                padded = F.pad(channels_first, [0, rows * period - length], data_format="NCL")
            folded = paddle.reshape(padded, [-1, d_model, rows, period])  # [B, D, rows, P]
            out = self.conv(folded)
            unfolded = paddle.reshape(out, [-1, d_model, rows * period])[:, :, :length]
            branches.append(unfolded)  # [B, D, L]
        stacked = paddle.stack(branches, axis=-1)  # [B, D, L, k]
        weights = F.softmax(self._amplitudes(x), axis=1)  # [B, k]
        mixed = paddle.sum(stacked * weights.unsqueeze(1).unsqueeze(1), axis=-1)  # [B, D, L]
        return paddle.transpose(mixed, [0, 2, 1]) + x

    def _amplitudes(self, x: paddle.Tensor) -> paddle.Tensor:
        """Per-window mean amplitude |rfft(x)| at each fixed bin: x [B, L, D] -> [B, k].

        The k bins are projected directly (``basis`` [2k, L] @ x), which is exact and runs
        in any runtime (ONNX Runtime's DFT kernel is O(L^2) for L = 315, OpenVINO cannot
        read it); the mean is over the LAST axis, D, as the FFT form's was: ONNX Runtime
        picks a middle-axis reduction's summation order by the batch size.
        """
        k = len(self.frequencies)
        projected = paddle.matmul(self.basis, x)  # [B, 2k, D]: real parts, then imaginary
        real, imaginary = projected[:, :k, :], projected[:, k:, :]
        return paddle.sqrt(real * real + imaginary * imaginary).mean(axis=-1)  # [B, k]


def dft_basis(length: int, bins: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """[2k, L]: rows cos(2 pi f t / L), then -sin(2 pi f t / L), for each bin f.

    basis @ x [L] gives the real parts, then the imaginary parts, of rfft(x) at the bins.
    """
    t = np.arange(length, dtype=np.float64)[None, :]
    angle = 2.0 * math.pi * np.asarray(bins, dtype=np.float64)[:, None] * t / length  # [k, L]
    return np.concatenate([np.cos(angle), -np.sin(angle)], axis=0).astype(np.float32)


def sinusoidal_positions(length: int, d_model: int) -> npt.NDArray[np.float32]:
    """Fixed sine/cosine positional table [L, D] (Vaswani et al.)."""
    position = np.arange(length, dtype=np.float64)[:, None]
    scale = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * -(math.log(10000.0) / d_model))
    table = np.zeros((length, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(position * scale)
    table[:, 1::2] = np.cos(position * scale)[:, : d_model // 2]
    return table.astype(np.float32)


class TimesNet(nn.Layer):
    """TimesNet classifier: x [B, L, C] normalized windows -> logits [B, K]."""

    def __init__(self, config: TimesNetConfig) -> None:
        super().__init__()
        self.config = config
        # circular padding by one sample, done in forward: ONNX's Pad mode "wrap" is not
        # read by OpenVINO, a concat is read by every runtime (same weights, same result)
        self.token = nn.Conv1D(
            config.channels,
            config.d_model,
            kernel_size=3,
            padding=0,
            bias_attr=False,
            weight_attr=nn.initializer.KaimingNormal(),
        )
        self.register_buffer(
            "positions",
            paddle.to_tensor(sinusoidal_positions(config.window_length, config.d_model)[None]),
            persistable=False,
        )
        self.blocks = nn.LayerList([TimesBlock(config) for _ in range(config.e_layers)])
        self.norm = nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.window_length * config.d_model, config.num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, L, C] -> logits [B, K]."""
        hidden = self.dropout(self._tokens(x) + self.positions)  # [B, L, D]
        for block in self.blocks:
            hidden = self.norm(block(hidden))
        hidden = self.dropout(F.gelu(hidden))
        flat = paddle.reshape(hidden, [-1, self.config.window_length * self.config.d_model])
        return self.head(flat)

    def _tokens(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, L, C] -> [B, L, D]: the kernel-3 token Conv1D over the window, wrapped around."""
        channels_first = paddle.transpose(x, [0, 2, 1])  # [B, C, L]
        wrapped = paddle.concat(
            [channels_first[:, :, -1:], channels_first, channels_first[:, :, :1]], axis=2
        )  # [B, C, L + 2]: the last sample before the first, the first after the last
        return paddle.transpose(self.token(wrapped), [0, 2, 1])


class ProbabilityHead(nn.Layer):
    """Wraps a classifier (TimesNet, TCN, ensemble) so the exported graph returns probabilities.

    The wrapped network maps x [B, L, C] to logits [B, K] (or log-probabilities).
    """

    def __init__(self, network: nn.Layer) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, L, C] -> probabilities [B, K]."""
        return F.softmax(self.network(x), axis=-1)


__all__ = [
    "InceptionBlock",
    "ProbabilityHead",
    "TimesBlock",
    "TimesNet",
    "TimesNetConfig",
    "dft_basis",
    "dominant_frequencies",
]
