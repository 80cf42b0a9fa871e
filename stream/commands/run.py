"""`sensorstream run`: the streaming worker."""

from __future__ import annotations

import argparse
import logging
import time

from stream.commands.arguments import add_runtime_override

log = logging.getLogger(__name__)

FAILURE_SCRAPE_S = 10.0  # twice deploy/prometheus's scrape interval


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
    """--config, repeatable --set and --runtime, shared by the commands that run a worker."""
    parser.add_argument("--config", default=None, help="config.toml (default: built-in defaults)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable); wins over SENSORSTREAM__SECTION__KEY",
    )
    add_runtime_override(parser)


def run(args: argparse.Namespace) -> int:
    """Load, check, serve, consume until SIGTERM/SIGINT, drain, exit 0."""
    from stream.config.loading import load_config
    from stream.core.inference import PredictorError
    from stream.core.signals import StopForwarder, reload_on_sighup, stop_on_signals
    from stream.service import (
        attach_model_reload,
        attach_shadow_reload,
        build_worker,
        start_http,
    )

    config = load_config(args.config, args.overrides)
    stop = StopForwarder()  # a SIGTERM while the model loads still ends in a clean exit
    with stop_on_signals(stop):
        worker = build_worker(config)
        stop.attach(worker)
        server = start_http(config, worker)
        log.info(
            "worker starting model=%s:%s topics=%s metrics=%s",
            worker.manifest.name,
            worker.manifest.version,
            ",".join(config.kafka.input_topics),
            server.url,
        )
        reloaders = [attach_model_reload(config, worker), attach_shadow_reload(config, worker)]
        try:
            with reload_on_sighup([r for r in reloaders if r is not None]):
                worker.run()
        except PredictorError:
            # The alert counts sensorstream_predictor_errors_total; a count no scrape saw
            # never fires it, so /metrics stays up for two of the shipped scrape intervals.
            worker.request_stop()
            log.error(
                "predictor failed; serving /metrics for %.0f s before exiting", FAILURE_SCRAPE_S
            )
            time.sleep(FAILURE_SCRAPE_S)
            raise
        finally:
            server.stop()
    log.info("worker stopped windows=%d records=%d", worker.stats.windows, worker.stats.records)
    return 0
