"""`sensorstream run`: the streaming worker."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `run`."""
    parser = subparsers.add_parser(
        "run",
        help="consume sensor samples, classify windows, produce events",
        description="Run the worker: one consumer in the group, batched predictions, "
        "events and dead letters out, offsets committed only when nothing can be lost.",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config and repeatable --set, shared by the commands that run a worker."""
    parser.add_argument("--config", default=None, help="config.toml (default: built-in defaults)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable); wins over SENSORSTREAM__SECTION__KEY",
    )


def run(args: argparse.Namespace) -> int:
    """Load, check, serve, consume until SIGTERM/SIGINT, drain, exit 0."""
    from stream.config import load_config
    from stream.service import build_worker, start_http, stop_on_signals

    config = load_config(args.config, args.overrides)
    worker = build_worker(config)
    server = start_http(config, worker)
    log.info(
        "worker starting model=%s:%s topics=%s metrics=%s",
        worker.manifest.name,
        worker.manifest.version,
        ",".join(config.kafka.input_topics),
        server.url,
    )
    try:
        with stop_on_signals(worker):
            worker.run()
    finally:
        server.stop()
    log.info("worker stopped windows=%d records=%d", worker.stats.windows, worker.stats.records)
    return 0
