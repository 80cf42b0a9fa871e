"""argparse types that bound numeric flags: a bad value is one argparse error line, exit 2."""

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
