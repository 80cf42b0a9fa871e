"""Flags shared by subcommands: argparse types that bound numeric flags (a bad value is one
argparse error line, exit 2) and the inference runtime choice.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def integer(low: int, high: int) -> Callable[[str], int]:
    """A flag type accepting whole numbers from low to high."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected an integer from {low:,} to {high:,}, got {text!r}"
            )
        return value

    return parse


def number(
    low: float, high: float, *, above_low: bool = False, below_high: bool = False
) -> Callable[[str], float]:
    """A flag type accepting finite numbers in [low, high], ends excluded where asked."""
    span = f"{'(' if above_low else '['}{low:g}, {high:g}{')' if below_high else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = (value > low if above_low else value >= low) and (
            value < high if below_high else value <= high
        )
        if not math.isfinite(value) or not inside:
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {text!r}")
        return value

    return parse


#: A TCP port a client can connect to or a broker can listen on.
port = integer(1, 65535)


# timesnet.predictor.RUNTIMES, spelled out so that `--help` need not import numpy
RUNTIMES = ("onnxruntime", "openvino", "paddle")
RUNTIME_HELP = "onnxruntime (default) or openvino: read model.onnx; paddle: Paddle Inference"


def add_runtime_flag(p: argparse.ArgumentParser) -> None:
    """--runtime: what runs the model, for commands that load a model directory themselves."""
    p.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime", help=RUNTIME_HELP)


class _RuntimeOverride(argparse.Action):
    """Appends `model.runtime="X"` to the --set overrides, so the config checks it like one."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        overrides = list(getattr(namespace, "overrides", None) or [])
        namespace.overrides = [*overrides, f'model.runtime="{values}"']


def add_runtime_override(p: argparse.ArgumentParser) -> None:
    """--runtime for commands configured by config.toml: shorthand for --set model.runtime=X."""
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        action=_RuntimeOverride,
        default=argparse.SUPPRESS,
        help=f"{RUNTIME_HELP} (default: [model] runtime of the config)",
    )
