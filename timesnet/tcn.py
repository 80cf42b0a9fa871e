"""A temporal convolutional network (TCN) classifier in Paddle: the fast model.

Dilated residual Conv1D blocks (two convolutions per block, Bai et al. 2018) turn a
window into per-step features; a head reads either the last step or the global
average over time. Every operation works on one window at a time (batch norm uses
its running statistics in eval mode), so a window's output never depends on its
batch-mates. Batch norm rather than weight norm: in the exported graph it folds
into the preceding convolution, which is where the speed of this model comes from.
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
    dropout: float = 0.1
    causal: bool = False
    head: Head = "gap"

    def __post_init__(self) -> None:
        if self.window_length < 2 or self.channels < 1 or self.num_classes < 2:
            raise ModelError(
                f"window_length={self.window_length} channels={self.channels} "
                f"num_classes={self.num_classes}: need length >= 2, channels >= 1, classes >= 2"
            )
        if self.hidden_channels < 1 or self.kernel_size < 2:
            raise ModelError(f"hidden_channels={self.hidden_channels} kernel_size="
                             f"{self.kernel_size}: need channels >= 1 and kernel size >= 2")
        if self.head not in HEADS:
            raise ModelError(f"head {self.head!r} unknown; use one of {', '.join(HEADS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"dropout={self.dropout} must be in [0, 1)")
        dilations = tuple(int(d) for d in self.dilations) or self._covering_dilations()
        if any(d < 1 for d in dilations):
            raise ModelError(f"dilations {list(dilations)} must all be >= 1")
        object.__setattr__(self, "dilations", dilations)

    @property
    def receptive_field(self) -> int:
        """Samples one output step sees: 1 + 2 (k - 1) sum(dilations) (two convs per block)."""
        return 1 + 2 * (self.kernel_size - 1) * sum(self.dilations)

    @property
    def required_receptive_field(self) -> int:
        """Receptive field at which every output step sees the whole window.

        Causal: step t sees t - rf + 1 .. t, so rf >= L. Non-causal ('same'): step t
        sees about rf / 2 either side, so the first and last steps need rf >= 2L - 1.
        """
        return self.window_length if self.causal else 2 * self.window_length - 1

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

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int,
                 causal: bool) -> None:
        super().__init__()
        total = (kernel_size - 1) * dilation
        left = total if causal else total // 2
        self.padding = [left, total - left]
        self.conv = nn.Conv1D(in_channels, out_channels, kernel_size, dilation=dilation,
                              weight_attr=nn.initializer.KaimingNormal())

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, Cin, L] -> [B, Cout, L]."""
        return self.conv(F.pad(x, self.padding, data_format="NCL"))


class TemporalBlock(nn.Layer):
    """Two dilated convolutions with batch norm, ReLU and dropout, plus a residual path."""

    def __init__(self, in_channels: int, out_channels: int, config: TCNConfig,
                 dilation: int) -> None:
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
        self.residual = (nn.Conv1D(in_channels, out_channels, 1)
                         if in_channels != out_channels else nn.Identity())

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, Cin, L] -> [B, Cout, L]."""
        return F.relu(self.body(x) + self.residual(x))


class TCN(nn.Layer):
    """TCN classifier: x [B, L, C] normalized windows -> logits [B, K]."""

    def __init__(self, config: TCNConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.channels] + [config.hidden_channels] * len(config.dilations)
        self.blocks = nn.Sequential(*[
            TemporalBlock(widths[i], widths[i + 1], config, dilation)
            for i, dilation in enumerate(config.dilations)
        ])
        self.classifier = nn.Linear(config.hidden_channels, config.num_classes)

    def features(self, x: paddle.Tensor) -> paddle.Tensor:
        """Per-step features: x [B, L, C] -> [B, H, L]."""
        return self.blocks(paddle.transpose(x, [0, 2, 1]))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [B, L, C] -> logits [B, K]."""
        hidden = self.features(x)  # [B, H, L]
        if self.config.head == "last":
            pooled = hidden[:, :, -1]  # [B, H]
        else:
            pooled = paddle.mean(hidden, axis=-1)  # [B, H]
        return self.classifier(pooled)


__all__ = ["HEADS", "TCN", "DilatedConv", "TCNConfig", "TemporalBlock"]
