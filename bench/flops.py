"""FLOPs per window of a model directory, counted from its network's layers.

One FLOP is one multiply or one add (a multiply-accumulate is 2). The dynamic-graph
network (`timesnet.network_loader.load_network`) runs once on a [1, L, C] window with
a hook on every layer; each layer's FLOPs then come from a hand formula for its type,
fed the shapes the hook saw:

- Conv1D / Conv2D: 2 x output elements x Cin/groups x kernel taps, plus one add per
  output element for the bias. "Effective" counts only the taps that land on real
  input, not on zero padding: TimesNet folds a 315-sample series into 1-3 rows, so a
  5x5 kernel reads padding on most of its rows, and oneDNN's and ORT's direct
  convolutions skip those taps. Circular padding reads real samples, so it counts.
- Linear: 2 x in x out per row, plus the bias.
- The amplitude weights of a TimesBlock: the full real FFT of each of D channels
  (2.5 L log2 L, the usual radix estimate) and the magnitude of every bin (4), or,
  for a network that projects onto its k fixed bins, 2 x 2k x L x D.
- Element-wise work, per element of the tensor it touches: LayerNorm 8, GELU 5,
  BatchNorm (eval) 2, ReLU 1, the Inception mean (k - 1 adds and a divide), the period
  mixing (a multiply and an add per period), residual and positional adds 1.

`tool_check` asks `paddle.flops` for the same network: it counts convolutions and
linear layers as multiply-accumulates (plus the bias), so 2 x its figure should be the
hand count of those layers.
"""

from __future__ import annotations

import contextlib
import io
import math
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LAYER_NORM_FLOPS = 8  # mean, variance (sub, square, add), normalize (sub, mul), affine (mul, add)
GELU_FLOPS = 5  # 0.5 x (1 + erf(x / sqrt 2)) x: mul, erf, add, mul, mul
BATCH_NORM_FLOPS = 2  # folded scale and shift in eval mode
FFT_FLOPS_PER_POINT_LOG2 = 2.5  # real FFT: ~2.5 N log2 N
MAGNITUDE_FLOPS = 4  # re^2 + im^2, sqrt


@dataclass(frozen=True)
class LayerCount:
    """FLOPs of one layer for one window."""

    name: str  # the layer's path in the network
    kind: str  # conv | linear | amplitude | elementwise
    nominal: float
    effective: float


@dataclass(frozen=True)
class ModelFlops:
    """FLOPs per window of one model, layer by layer."""

    model: str
    layers: tuple[LayerCount, ...]
    uncounted: tuple[str, ...]  # leaf layer types without a formula (counted as 0)

    @property
    def nominal(self) -> float:
        """FLOPs per window as a dense kernel computes them, padding included."""
        return sum(layer.nominal for layer in self.layers)

    @property
    def effective(self) -> float:
        """FLOPs per window on real input only (no taps on zero padding)."""
        return sum(layer.effective for layer in self.layers)

    def by_kind(self) -> dict[str, tuple[float, float]]:
        """kind -> (nominal, effective) FLOPs per window."""
        found: dict[str, tuple[float, float]] = {}
        for layer in self.layers:
            nominal, effective = found.get(layer.kind, (0.0, 0.0))
            found[layer.kind] = (nominal + layer.nominal, effective + layer.effective)
        return found


def count_model(model_dir: str | Path) -> ModelFlops:
    """Run the model's network once on a zero window and count every layer it ran."""
    import paddle

    from timesnet.manifest import load_manifest
    from timesnet.network_loader import load_network

    manifest = load_manifest(model_dir)
    network = load_network(model_dir)
    seen: list[tuple[str, Any, list[int], list[int]]] = []
    handles = []
    for name, layer in network.named_sublayers(include_self=True):

        def hook(layer: Any, inputs: Any, output: Any, name: str = name) -> None:
            first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
            out = output[0] if isinstance(output, (tuple, list)) else output
            seen.append((name or "network", layer, list(first.shape), list(out.shape)))

        handles.append(layer.register_forward_post_hook(hook))
    try:
        with paddle.no_grad():
            network(paddle.zeros([1, manifest.window_length, manifest.channels]))
    finally:
        for handle in handles:
            handle.remove()
    layers: list[LayerCount] = []
    uncounted: set[str] = set()
    for name, layer, in_shape, out_shape in seen:
        found = layer_flops(name, layer, in_shape, out_shape)
        if found is None:
            if not list(layer.children()):
                uncounted.add(type(layer).__name__)
            continue
        layers.extend(found)
    return ModelFlops(Path(model_dir).name, tuple(layers), tuple(sorted(uncounted)))


def layer_flops(
    name: str, layer: Any, in_shape: list[int], out_shape: list[int]
) -> list[LayerCount] | None:
    """The hand formula of the layer's type; None for a type without one."""
    from paddle import nn

    from timesnet.ensemble_net import EnsembleNet
    from timesnet.network import InceptionBlock, ProbabilityHead, TimesBlock, TimesNet
    from timesnet.tcn import TCN, TemporalBlock

    out = float(np.prod(out_shape))
    simple = {
        nn.LayerNorm: LAYER_NORM_FLOPS,
        nn.GELU: GELU_FLOPS,
        nn.BatchNorm1D: BATCH_NORM_FLOPS,
        nn.BatchNorm2D: BATCH_NORM_FLOPS,
        nn.ReLU: 1,
        nn.Dropout: 0,
        nn.Identity: 0,
    }
    if isinstance(layer, (nn.Conv1D, nn.Conv2D)):
        return [_conv(name, layer, in_shape, out_shape)]
    if isinstance(layer, nn.Linear):
        rows = out / out_shape[-1]
        flops = rows * (2.0 * layer.weight.shape[0] * layer.weight.shape[1] + layer.weight.shape[1])
        return [LayerCount(name, "linear", flops, flops)]
    for kind, per_element in simple.items():
        if type(layer) is kind:
            return [_elementwise(name, per_element * out)]
    if isinstance(layer, TimesBlock):
        return _times_block(name, layer, out_shape)
    if isinstance(layer, InceptionBlock):
        return [_elementwise(name, layer.num_kernels * out)]  # k - 1 adds and a divide
    if isinstance(layer, TimesNet):
        hidden = float(layer.config.window_length * layer.config.d_model)
        return [_elementwise(name, (1 + GELU_FLOPS) * hidden)]  # positions add, gelu
    if isinstance(layer, TemporalBlock):
        return [_elementwise(name, 2 * out)]  # residual add, relu
    if isinstance(layer, TCN):
        steps = layer.config.steps * layer.config.hidden_channels
        return [_elementwise(name, steps if layer.config.head == "gap" else 0.0)]
    if isinstance(layer, (EnsembleNet, ProbabilityHead)):
        return [_elementwise(name, 3 * out)]  # softmax (exp, sum, divide); the mean is smaller
    return None


def _elementwise(name: str, flops: float) -> LayerCount:
    return LayerCount(name, "elementwise", flops, flops)


def _times_block(name: str, block: Any, out_shape: list[int]) -> list[LayerCount]:
    """The amplitude weights, the mixing of the k period branches, the residual add."""
    length, d_model = out_shape[1], out_shape[2]
    k = len(block.periods)
    basis = getattr(block, "basis", None)
    if basis is not None:  # a projection onto the k fixed bins: [2k, L] @ [L, D]
        amplitude = 2.0 * 2 * k * length * d_model + MAGNITUDE_FLOPS * k * d_model
    else:
        fft = FFT_FLOPS_PER_POINT_LOG2 * length * math.log2(length) * d_model
        amplitude = fft + MAGNITUDE_FLOPS * (length // 2 + 1) * d_model
    mixing = 2.0 * k * length * d_model + 3 * k  # weight x branch, sum; softmax over k
    return [
        LayerCount(f"{name}.amplitude", "amplitude", amplitude, amplitude),
        _elementwise(f"{name}.mixing", mixing + length * d_model),  # + the residual add
    ]


def _conv(name: str, layer: Any, in_shape: list[int], out_shape: list[int]) -> LayerCount:
    """A Conv1D/Conv2D: nominal = every tap, effective = taps on real input only."""
    weight = list(layer.weight.shape)  # [Cout, Cin / groups, *kernel]
    spatial_in, spatial_out = in_shape[2:], out_shape[2:]
    kernel = weight[2:]
    per_tap = 2.0 * weight[0] * weight[1] * out_shape[0]  # MAC over Cin/groups, every Cout
    taps_nominal = float(np.prod(spatial_out)) * float(np.prod(kernel))
    circular = getattr(layer, "_padding_mode", "zeros") != "zeros"
    taps_real = taps_nominal
    if not circular:
        taps_real = 1.0
        for axis, (size_in, size_out, k) in enumerate(
            zip(spatial_in, spatial_out, kernel, strict=True)
        ):
            stride = _per_axis(layer._stride, len(kernel))[axis]
            dilation = _per_axis(layer._dilation, len(kernel))[axis]
            low = _low_padding(layer._padding, len(kernel), axis, size_in, size_out, k, stride)
            taps_real *= real_taps(size_in, size_out, k, stride, dilation, low)
    bias = float(np.prod(out_shape)) if getattr(layer, "bias", None) is not None else 0.0
    return LayerCount(name, "conv", per_tap * taps_nominal + bias, per_tap * taps_real + bias)


def real_taps(
    size_in: int, size_out: int, kernel: int, stride: int, dilation: int, low: int
) -> int:
    """Over all output positions of one axis, the kernel taps that read real (unpadded) input."""
    positions = np.arange(size_out)[:, None] * stride - low + np.arange(kernel)[None, :] * dilation
    return int(((positions >= 0) & (positions < size_in)).sum())


def _per_axis(value: Any, axes: int) -> list[int]:
    if isinstance(value, int):
        return [value] * axes
    return [int(v) for v in value]


def _low_padding(
    padding: Any, axes: int, axis: int, size_in: int, size_out: int, kernel: int, stride: int
) -> int:
    """Zero padding before the first input element on `axis` (Paddle's padding forms)."""
    if isinstance(padding, int):
        return padding
    if isinstance(padding, str):  # "SAME" / "VALID": Paddle splits the total, the rest after
        total = max(0, (size_out - 1) * stride + kernel - size_in)
        return total // 2
    flat = [int(p) for p in np.asarray(padding).reshape(-1)]
    if len(flat) == axes:
        return flat[axis]
    return flat[2 * axis]  # [lo, hi] per axis


def tool_check(model_dir: str | Path) -> float | None:
    """paddle.flops' count (multiply-accumulates of conv and linear layers), or None."""
    try:
        import paddle
        import paddle.hapi.dynamic_flops as dynamic_flops
    except ImportError:
        return None
    from timesnet.manifest import load_manifest
    from timesnet.network_loader import load_network

    manifest = load_manifest(model_dir)
    network = load_network(model_dir)
    with _numpy2_counters(dynamic_flops, paddle), contextlib.redirect_stdout(io.StringIO()):
        return float(dynamic_flops.flops(network, [1, manifest.window_length, manifest.channels]))


@contextlib.contextmanager
def _numpy2_counters(module: types.ModuleType, paddle: types.ModuleType) -> Iterator[None]:
    """Let paddle.flops run under numpy 2.

    Paddle 3.3's counters are [1]-shaped tensors that it converts with int(), which
    numpy 2 refuses for arrays that are not 0-d; the counters are made 0-d here
    (zeros([1]) -> zeros([])) and the parameter count stored without indexing.
    """

    class Scalars(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            return getattr(paddle, name)

        @staticmethod
        def zeros(shape: Any, dtype: Any = None) -> Any:
            return paddle.zeros([] if list(shape) == [1] else shape, dtype=dtype)

    def count_parameters(layer: Any, inputs: Any, output: Any) -> None:
        total = sum(int(np.prod(p.shape)) for p in layer.parameters())
        layer.total_params.set_value(paddle.to_tensor(total, dtype="int64"))

    saved = module.paddle, module.count_parameters  # type: ignore[attr-defined]
    module.paddle, module.count_parameters = Scalars("paddle"), count_parameters  # type: ignore[attr-defined]
    try:
        yield
    finally:
        module.paddle, module.count_parameters = saved  # type: ignore[attr-defined]
