"""Assembling a worker from a config: model, topics, HTTP, signals.

Shared by `sensorstream run`, the demo and the benchmarks, so that all three
exercise exactly the same start-up checks.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from stream.config.model_checks import (
    check_abstain_label,
    check_against_model,
    check_rules_against_labels,
)
from stream.config.schema import Config
from stream.core.checkpoint import Checkpoint
from stream.core.worker import Worker
from stream.errors import SensorstreamError
from stream.http.classify import EndpointLimits, attach_classify_endpoint
from stream.http.server import HttpServer, ServerLimits, read_token
from stream.http.status_page import add_status_routes
from stream.kafka.security import check_connection
from stream.kafka.topics import ensure_topics
from timesnet.batch_predictor import BatchPredictor

log = logging.getLogger(__name__)


def load_model(config: Config) -> BatchPredictor:
    """The predictor named by `[model]`, or one line that says what to fix."""
    from timesnet.errors import ModelError
    from timesnet.predictor import load_predictor

    try:
        predictor = load_predictor(
            config.model.path, device=config.model.device, threads=config.model.threads
        )
    except ModelError as exc:
        raise SensorstreamError(f"model.path: {exc}") from exc
    return predictor


def build_worker(
    config: Config,
    predictor: BatchPredictor | None = None,
    registry: CollectorRegistry | None = None,
    event_extras: dict[str, object] | None = None,
    checkpoint: Checkpoint | None = None,
) -> Worker:
    """A worker with its topics ensured and its model loaded (not yet polling)."""
    check_connection(config.kafka)  # TLS/SASL mistakes: one clear line, before the model loads
    predictor = predictor if predictor is not None else load_model(config)
    manifest = predictor.manifest
    check_against_model(config, manifest.window_length, manifest.channels)
    check_rules_against_labels(config.alerts, manifest.labels)
    check_abstain_label(config.model, manifest.labels)
    ensure_topics(config.kafka)
    return Worker(config, predictor, registry, event_extras, checkpoint)


def start_http(config: Config, worker: Worker) -> HttpServer:
    """Serve /metrics, /healthz, /readyz and POST /time-series-classification for `worker`."""
    http = config.http
    server = HttpServer(
        config.metrics.host,
        config.metrics.port,
        worker.metrics.registry,
        alive=lambda: not worker.stopping,
        ready=worker.ready,
        limits=ServerLimits(http.threads, http.max_connections, http.read_timeout_s),
        token=read_token(http.token_env, http.token_file),
    )
    # PaddleX-style classification, answered inside the stream's own predictor batches
    attach_classify_endpoint(
        server,
        worker.side_requests.classify,
        worker.manifest,
        EndpointLimits(
            max_body_bytes=server.max_body_bytes,
            fetch_urls=http.fetch_urls,
            fetch_allow_hosts=frozenset(h.lower().rstrip(".") for h in http.fetch_allow_hosts),
        ),
    )
    add_status_routes(server, worker)  # the live page at / and its /status.json
    try:
        server.start()
    except OSError as exc:
        raise SensorstreamError(
            f"metrics: cannot listen on {config.metrics.host}:{config.metrics.port} ({exc}); "
            "set metrics.port to a free port (0 picks one)"
        ) from exc
    return server
