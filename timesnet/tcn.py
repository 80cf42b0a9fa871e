"""A temporal convolutional network (TCN) classifier in Paddle: the fast model.

An optional patch stem (a Conv1D with kernel = stride = `downsample`) shortens the
window first; dilated residual Conv1D blocks (two convolutions per block, Bai et al.
2018) then turn it into per-step features; a head reads either the last step or the
global average over time. The stem cuts the work of every block by its factor, and
UWave's 315 samples of smooth accelerometer motion lose little when read in patches
of a few samples.

Every operation works on one window at a time (batch norm uses its running
statistics in eval mode), so a window's output never depends on its batch-mates.
Batch norm (not weight norm) because at inference it is a fixed per-channel scale
and shift, with no statistics of the window or the batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import paddle
import paddle.nn.functional as F
from paddle import nn

from timesnet.errors import ModelError

Head = Literal["last", "gap"]
HEADS: tuple[str, ...] = ("last", "gap")


@dataclass(frozen=True)
class TCNConfig:
    """Hyperparameters of one TCN classifier; empty `dilations` means "cover the window"."""

    window_length: int
    channels: int
    num_classes: int
    hidden_channels: int = 32
    kernel_size: int = 3
    dilations: tuple[int, ...] = ()
    downsample: int = 1  # samples per step after the patch stem; 1 = no stem
    dropout: float = 0.1
    causal: bool = False
    head: Head = "gap"

    def __post_init__(self) -> None:
        if self.window_length < 2 or self.channels < 1 or self.num_classes < 2:
            raise ModelError(
                f"window_length={self.window_length} channels={self.channels} "
                f"num_classes={self.num_classes}: need length >= 2, channels >= 1, classes >= 2"
            )
        if self.hidden_channels < 1 or self.kernel_size < 2 or self.downsample < 1:
            raise ModelError(
                f"hidden_channels={self.hidden_channels} kernel_size="
                f"{self.kernel_size} downsample={self.downsample}: need channels "
                ">= 1, kernel size >= 2 and downsample >= 1"
            )
        if self.downsample > self.window_length // 2:
            raise ModelError(
                f"downsample={self.downsample} leaves fewer than 2 steps of a "
                f"{self.window_length}-sample window; use at most "
                f"{self.window_length // 2}"
            )
        if self.head not in HEADS:
            raise ModelError(f"head {self.head!r} unknown; use one of {', '.join(HEADS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"dropout={self.dropout} must be in [0, 1)")
        dilations = tuple(int(d) for d in self.dilations) or self._covering_dilations()
        if any(d < 1 for d in dilations):
            raise ModelError(f"dilations {list(dilations)} must all be >= 1")
        object.__setattr__(self, "dilations", dilations)

    @property
    def steps(self) -> int:
        """Time steps after the stem: ceil(window_length / downsample)."""
        return -(-self.window_length // self.downsample)

    @property
    def receptive_field(self) -> int:
        """Steps one output step sees: 1 + 2 (k - 1) sum(dilations) (two convs per block)."""
        return 1 + 2 * (self.kernel_size - 1) * sum(self.dilations)

    @property
    def required_receptive_field(self) -> int:
        """Receptive field (in steps) at which every output step sees the whole window.

        Causal: step t sees t - rf + 1 .. t, so rf >= steps. Non-causal ('same'): step t
        sees about rf / 2 either side, so the first and last steps need rf >= 2 steps - 1.
        """
        return self.steps if self.causal else 2 * self.steps - 1

    def _covering_dilations(self) -> tuple[int, ...]:
        """Dilations 1, 2, 4, ... until the receptive field is the required one."""
        dilations: list[int] = []
        field = 1
        while field < self.required_receptive_field:
            dilations.append(2 ** len(dilations))
            field += 2 * (self.kernel_size - 1) * dilations[-1]
        return tuple(dilations)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; round-trips through `from_dict`."""
        data = asdict(self)
        data["dilations"] = list(self.dilations)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TCNConfig:
        """Build from `to_dict` output (lists become tuples)."""
        return cls(**{**data, "dilations": tuple(data["dilations"])})


class DilatedConv(nn.Layer):
    """Conv1D with dilation and explicit causal (left) or 'same' (split) padding."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, causal: bool
    ) -> None:
        super().__init__()
        total = (kernel_size - 1) * dilation
        left = total if causal else total // 2
        self.conv = nn.Conv1D(
            in_channels,
            out_channels,
            kernel_size,
            dilation=dilation,
            padding=[left, total - left],
            weight_attr=nn.initializer.KaimingNormal(),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, Cin, L] -> [B, Cout, L]."""
        return self.conv(x)


class TemporalBlock(nn.Layer):
    """Two dilated convolutions with batch norm, ReLU and dropout, plus a residual path."""

    def __init__(
        self, in_channels: int, out_channels: int, config: TCNConfig, dilation: int
    ) -> None:
        super().__init__()
        k, causal = config.kernel_size, config.causal
        self.body = nn.Sequential(
            DilatedConv(in_channels, out_channels, k, dilation, causal),
            nn.BatchNorm1D(out_channels),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            DilatedConv(out_channels, out_channels, k, dilation, causal),
            nn.BatchNorm1D(out_channels),
            nn.ReLU(),
            nn.Dropout(config.dropout),
        )
        # A 1x1 convolution matches the channel count when the block widens its input.
        self.residual = (
            nn.Conv1D(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, Cin, L] -> [B, Cout, L]."""
        return F.relu(self.body(x) + self.residual(x))


class TCN(nn.Layer):
    """TCN classifier: x [B, L, C] normalized windows -> logits [B, K]."""

    def __init__(self, config: TCNConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = None
        first = config.channels
        if config.downsample > 1:
            # Left zero padding makes the last patch end on the window's newest sample.
            extra = config.steps * config.downsample - config.window_length
            self.stem = nn.Conv1D(
                config.channels,
                config.hidden_channels,
                config.downsample,
                stride=config.downsample,
                padding=[extra, 0],
                weight_attr=nn.initializer.KaimingNormal(),
            )
            first = config.hidden_channels
        widths = [first] + [config.hidden_channels] * len(config.dilations)
        self.blocks = nn.Sequential(
            *[
                TemporalBlock(widths[i], widths[i + 1], config, dilation)
                for i, dilation in enumerate(config.dilations)
            ]
        )
        self.classifier = nn.Linear(config.hidden_channels, config.num_classes)

    def features(self, x: paddle.Tensor) -> paddle.Tensor:
        """Per-step features: x [B, L, C] -> [B, H, S] with S = config.steps."""
        hidden = paddle.transpose(x, [0, 2, 1])  # [B, C, L]
        if self.stem is not None:
            hidden = self.stem(hidden)  # [B, H, S]
        return self.blocks(hidden)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, L, C] -> logits [B, K]."""
        hidden = self.features(x)  # [B, H, S]
        if self.config.head == "last":
            pooled = hidden[:, :, -1]  # [B, H]
        else:
            pooled = paddle.mean(hidden, axis=-1)  # [B, H]
        return self.classifier(pooled)


__all__ = ["HEADS", "TCN", "DilatedConv", "TCNConfig", "TemporalBlock"]
