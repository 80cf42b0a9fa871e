"""A classify server in this process, built as the worker and `serve` build theirs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from stream.http.classify import EndpointLimits, attach_classify_endpoint
from stream.http.request_batcher import RequestBatcher
from stream.http.server import HttpServer, ServerLimits
from timesnet.predictor import Predictor

BODY_LIMIT = 1024 * 1024


def in_process_server(predictor: Predictor, **limits: object) -> tuple[HttpServer, RequestBatcher]:
    """The HttpServer + classify endpoint the worker and `serve` both build, on a free port."""
    batcher = RequestBatcher(predictor, max_batch=16, max_wait_ms=2.0)
    server = HttpServer(
        "127.0.0.1",
        0,
        CollectorRegistry(),
        alive=lambda: True,
        ready=lambda: (True, ""),
        max_body_bytes=BODY_LIMIT,
        limits=ServerLimits(**limits),
    )  # type: ignore[arg-type]
    attach_classify_endpoint(
        server,
        batcher.classify,
        predictor.manifest,
        EndpointLimits(max_body_bytes=BODY_LIMIT, url_timeout_s=1.0),
    )
    server.start()
    return server, batcher
