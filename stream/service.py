"""Assembling a worker from a config: model, topics, HTTP, signals.

Shared by `sensorstream run`, the demo and the benchmarks, so that all three
exercise exactly the same start-up checks.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import CollectorRegistry

from stream.config.model_checks import (
    check_abstain_label,
    check_against_model,
    check_rules_against_labels,
)
from stream.config.schema import Config, shadow_topic
from stream.core.checkpoint import Checkpoint
from stream.core.model_reload import ModelReloader
from stream.core.shadow import ShadowRunner
from stream.core.worker import Worker
from stream.errors import SensorstreamError
from stream.http.classify import EndpointLimits, attach_classify_endpoint
from stream.http.server import HttpServer, ServerLimits, read_token
from stream.http.status_page import add_status_routes
from stream.kafka.security import check_connection
from stream.kafka.topics import ensure_topics
from timesnet.batch_predictor import BatchPredictor
from timesnet.manifest import ModelManifest

log = logging.getLogger(__name__)


def load_model(config: Config, path: Path | None = None) -> BatchPredictor:
    """The predictor named by `[model]` (or at `path`), or one line that says what to fix."""
    from timesnet.errors import DeviceError, ModelError, RuntimeNotInstalledError
    from timesnet.predictor import load_predictor

    model = config.model
    try:
        predictor = load_predictor(
            path or model.path, device=model.device, threads=model.threads, runtime=model.runtime
        )
    except RuntimeNotInstalledError as exc:
        raise SensorstreamError(f"model.runtime: {exc}") from exc
    except DeviceError as exc:
        raise SensorstreamError(f"model.device: {exc}") from exc
    except ModelError as exc:
        raise SensorstreamError(f"model.path: {exc}") from exc
    return predictor


def check_model_fits(config: Config, manifest: ModelManifest) -> None:
    """The start-up checks of a model against the config and the alert rules."""
    check_against_model(config, manifest.window_length, manifest.channels)
    check_rules_against_labels(config.alerts, manifest.labels)
    check_abstain_label(config.model, manifest.labels)


def attach_model_reload(config: Config, worker: Worker) -> ModelReloader:
    """Hot reload for `worker`: a new version at model.path is swapped in between batches.

    A reload keeps the label set: the HTTP answers, the events_total series, the alert
    rules and the shadow pairs are keyed by it, so a model with other labels is refused
    (restart the worker to change them).
    """
    served = worker.manifest

    def check(manifest: ModelManifest) -> None:
        check_model_fits(config, manifest)
        if tuple(manifest.labels) != tuple(served.labels):
            raise SensorstreamError(
                f"labels {list(manifest.labels)} differ from the served model's "
                f"{list(served.labels)}; restart the worker to change the label set"
            )

    reloader = ModelReloader(
        config.model.path,
        config.model.reload_interval_s,
        served.version,
        load=lambda path: load_model(config, path),
        check=check,
        on_refused=lambda reason: worker.metrics.model_reloads.labels("refused").inc(),
    )
    worker.reloader = reloader
    reloader.start()
    return reloader


def build_worker(
    config: Config,
    predictor: BatchPredictor | None = None,
    registry: CollectorRegistry | None = None,
    event_extras: dict[str, object] | None = None,
    checkpoint: Checkpoint | None = None,
) -> Worker:
    """A worker with its topics ensured and its model loaded (not yet polling)."""
    check_connection(config.kafka)  # TLS/SASL mistakes: one clear line, before the model loads
    owned = predictor is None
    predictor = predictor if predictor is not None else load_model(config)
    check_model_fits(config, predictor.manifest)
    ensure_topics(config.kafka, extra=[shadow_topic(config)] if config.shadow.path else [])
    worker = Worker(config, predictor, registry, event_extras, checkpoint, owns_predictor=owned)
    attach_shadow(config, worker)
    return worker


def attach_shadow(config: Config, worker: Worker) -> ShadowRunner | None:
    """The [shadow] model beside `worker`'s, if one is configured (one line if it does not fit)."""
    path = config.shadow.path
    if path is None:
        return None
    try:
        predictor = load_model(config, path)
    except SensorstreamError as exc:
        raise SensorstreamError(f"shadow.path: {str(exc).removeprefix('model.path: ')}") from exc
    try:
        check_shadow_fits(config, predictor.manifest)
    except Exception:
        predictor.close()
        raise
    worker.shadow = ShadowRunner(predictor, config.shadow.max_queued_batches)
    for agree in ("true", "false"):
        worker.metrics.shadow_agreement.labels(agree)  # both series exist from the start
    log.info(
        "shadow model=%s:%s topic=%s",
        predictor.manifest.name,
        predictor.manifest.version,
        shadow_topic(config),
    )
    return worker.shadow


def check_shadow_fits(config: Config, manifest: ModelManifest) -> None:
    """A shadow reads the same windows; its labels are its own (compared by name)."""
    try:
        check_against_model(config, manifest.window_length, manifest.channels)
        check_abstain_label(config.model, manifest.labels)
    except SensorstreamError as exc:
        raise SensorstreamError(f"shadow.path: {exc}") from exc


def attach_shadow_reload(config: Config, worker: Worker) -> ModelReloader | None:
    """Hot reload of the shadow model, like the primary's (same interval, SIGHUP too)."""
    if worker.shadow is None or config.shadow.path is None:
        return None
    reloader = ModelReloader(
        config.shadow.path,
        config.model.reload_interval_s,
        worker.shadow.manifest.version,
        load=lambda path: load_model(config, path),
        check=lambda manifest: check_shadow_fits(config, manifest),
        on_refused=lambda reason: worker.metrics.model_reloads.labels("refused").inc(),
        role="shadow",
    )
    worker.shadow_reloader = reloader
    reloader.start()
    return reloader


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
