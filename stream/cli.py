"""`sensorstream`: one entry point, one module per group of subcommands.

Each module in COMMAND_MODULES exposes ``register(subparsers)``, which adds its
subcommands with ``set_defaults(func=handler)``; a handler takes the parsed
arguments and returns an exit code. Heavy imports (Paddle, Kafka) stay inside
the handlers so that ``sensorstream --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "kafka",
    "model",
    "distill",
    "model_stats",
    "model_onnx",
    "run",
    "demo",
    "replay",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="sensorstream",
        description="Streaming sensor classification: Kafka in, TimesNet windows, events out.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"stream.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch, and turn a SensorstreamError into one line on stderr."""
    from stream.errors import SensorstreamError
    from timesnet.paddle_warnings import hide_ccache_warning

    hide_ccache_warning()  # Paddle's import would print it above every one-line error
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_level.upper() != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO is per-connection chatter
        # Paddle Inference (runtime "paddle") holds the GIL while a batch runs, so
        # kafka-python's network thread warns that its loop was blocked; heartbeats still
        # go out well inside the session timeout, and the warning would repeat every batch.
        logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SensorstreamError as exc:
        print(f"sensorstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sensorstream {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
