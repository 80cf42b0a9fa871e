"""`sensorstream serve`: the PaddleX-compatible classification endpoint without Kafka.

Serves POST /time-series-classification (see stream/classify_http.py), /metrics,
/healthz and /readyz. Concurrent requests are gathered by a RequestBatcher into one
predictor call of up to --max-batch windows, waiting at most --max-wait-ms.
"""

from __future__ import annotations

import argparse
import signal
import threading

from stream.errors import SensorstreamError

# Bodies between the endpoint's limit and this multiple of it still reach the endpoint,
# which answers them with a PaddleX-shaped 413; beyond it the HTTP server refuses them
# without reading them.
READ_CAP_FACTOR = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the serve subcommand."""
    p = subparsers.add_parser("serve", help="serve POST /time-series-classification over HTTP")
    p.add_argument("--model", required=True, help="model directory (e.g. models/uwave)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080, 0 picks one)")
    p.add_argument("--device", default="cpu", help="cpu | gpu | gpu:N (default cpu)")
    p.add_argument("--threads", type=int, default=2, help="CPU math threads (default 2)")
    p.add_argument("--max-batch", type=int, default=32,
                   help="most windows per predictor call (default 32)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="longest a request waits for batch-mates (default 5)")
    p.add_argument("--max-body-mb", type=float, default=8.0,
                   help="largest request body in MiB (default 8)")
    p.add_argument("--fetch-urls", action=argparse.BooleanOptionalAction, default=True,
                   help="accept http(s) URLs in \"csv\" (the server fetches them; default on)")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    """Handler of `sensorstream serve`: load, bind, serve until SIGINT/SIGTERM."""
    from prometheus_client import CollectorRegistry

    from stream.classify_http import CLASSIFY_PATH, EndpointLimits, attach_classify_endpoint
    from stream.http_server import HttpServer
    from stream.request_batcher import RequestBatcher
    from timesnet.errors import ModelError
    from timesnet.predictor import load_predictor

    if args.max_batch < 1 or args.max_wait_ms < 0 or args.max_body_mb <= 0:
        raise SensorstreamError("--max-batch must be >= 1, --max-wait-ms >= 0, --max-body-mb > 0")
    try:
        predictor = load_predictor(args.model, args.device, args.threads)
    except ModelError as exc:
        raise SensorstreamError(str(exc)) from exc
    batcher = RequestBatcher(predictor, args.max_batch, args.max_wait_ms)
    body_bytes = int(args.max_body_mb * 1024 * 1024)
    stopping = threading.Event()
    server = HttpServer(args.host, args.port, CollectorRegistry(),
                        alive=lambda: not stopping.is_set(), ready=lambda: (True, ""),
                        max_body_bytes=READ_CAP_FACTOR * body_bytes)
    limits = EndpointLimits(max_body_bytes=body_bytes, fetch_urls=args.fetch_urls)
    attach_classify_endpoint(server, batcher.classify, predictor.manifest, limits)
    try:
        server.start()
    except OSError as exc:
        raise SensorstreamError(f"cannot listen on {args.host}:{args.port} ({exc}); "
                                "pass a free --port (0 picks one)") from exc
    manifest = predictor.manifest
    print(f"serving model {manifest.name} version {manifest.version} at "
          f"{server.url}{CLASSIFY_PATH}", flush=True)
    try:
        _wait_for_signal(stopping)
    finally:
        server.stop()
        batcher.close()
    print("stopped", flush=True)
    return 0


def _wait_for_signal(stopping: threading.Event) -> None:
    """Block until SIGTERM or SIGINT sets `stopping`."""
    def handler(signum: int, frame: object) -> None:
        stopping.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
