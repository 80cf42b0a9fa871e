"""`sensorstream serve`: the PaddleX-compatible classification endpoint without Kafka.

Serves POST /time-series-classification (see stream/http/classify.py), /metrics,
/healthz and /readyz. Concurrent requests are gathered by a RequestBatcher into one
predictor call of up to --max-batch windows, waiting at most --max-wait-ms.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from stream.commands.arguments import add_runtime_flag
from stream.errors import SensorstreamError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from stream.core.model_reload import ModelReloader
    from stream.http.request_batcher import RequestBatcher
    from timesnet.manifest import ModelManifest

# A request waits at most this long for batch-mates: the batcher gives up after 30 s.
MAX_WAIT_MS = 10_000
MAX_BODY_MB = 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the serve subcommand."""
    p = subparsers.add_parser("serve", help="serve POST /time-series-classification over HTTP")
    p.add_argument("--model", required=True, help="model directory (e.g. models/uwave)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080, 0 picks one)")
    p.add_argument("--device", default="cpu", help="cpu | gpu | gpu:N (default cpu)")
    p.add_argument("--threads", type=int, default=2, help="CPU math threads (default 2)")
    add_runtime_flag(p)
    p.add_argument(
        "--max-batch", type=int, default=32, help="most windows per predictor call (default 32)"
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        help="longest a request waits for batch-mates (default 5)",
    )
    p.add_argument(
        "--max-body-mb", type=float, default=8.0, help="largest request body in MiB (default 8)"
    )
    p.add_argument(
        "--fetch-urls",
        action=argparse.BooleanOptionalAction,
        default=False,
        help='accept http(s) URLs in "csv" (the server fetches public hosts only; default off)',
    )
    p.add_argument(
        "--fetch-allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a host name fetched even if it resolves to an internal address "
        "(repeatable; with --fetch-urls)",
    )
    p.add_argument(
        "--token-env",
        help="environment variable holding a bearer token that "
        "POST /time-series-classification then requires",
    )
    p.add_argument("--token-file", type=Path, help="file holding that bearer token")
    p.add_argument(
        "--http-threads", type=int, default=8, help="requests handled at once (default 8)"
    )
    p.add_argument(
        "--max-connections", type=int, default=2000, help="open connections at most (default 2000)"
    )
    p.add_argument(
        "--reload-interval-s",
        type=float,
        default=10.0,
        help="check --model's manifest version this often and swap a new version in "
        "(0: only on SIGHUP; default 10)",
    )
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    """Handler of `sensorstream serve`: load, bind, serve until SIGINT/SIGTERM."""
    from prometheus_client import CollectorRegistry

    from stream.http.classify import CLASSIFY_PATH, EndpointLimits, attach_classify_endpoint
    from stream.http.request_batcher import RequestBatcher
    from stream.http.server import HttpServer, ServerLimits, read_token
    from timesnet.errors import ModelError
    from timesnet.predictor import load_predictor

    _check_args(args)
    token = read_token(args.token_env, args.token_file)
    try:
        predictor = load_predictor(args.model, args.device, args.threads, args.runtime)
    except ModelError as exc:
        raise SensorstreamError(str(exc)) from exc
    batcher = RequestBatcher(predictor, args.max_batch, args.max_wait_ms)
    body_bytes = int(args.max_body_mb * 1024 * 1024)
    stopping = threading.Event()
    server = HttpServer(
        args.host,
        args.port,
        CollectorRegistry(),
        alive=lambda: not stopping.is_set(),
        ready=lambda: (True, ""),
        max_body_bytes=body_bytes,
        limits=ServerLimits(args.http_threads, args.max_connections),
        token=token,
    )
    allow = frozenset(host.lower().rstrip(".") for host in args.fetch_allow_host)
    limits = EndpointLimits(
        max_body_bytes=body_bytes, fetch_urls=args.fetch_urls, fetch_allow_hosts=allow
    )
    attach_classify_endpoint(server, batcher.classify, predictor.manifest, limits)
    try:
        server.start()
    except OSError as exc:
        raise SensorstreamError(
            f"cannot listen on {args.host}:{args.port} ({exc}); pass a free --port (0 picks one)"
        ) from exc
    manifest = predictor.manifest
    print(
        f"serving model {manifest.name} version {manifest.version} at {server.url}{CLASSIFY_PATH}",
        flush=True,
    )
    reloader = _model_reload(args, manifest, server.registry)
    try:
        _wait_for_signal(stopping, reloader, batcher)
    finally:
        server.stop()
        reloader.close()
        batcher.close()
    print("stopped", flush=True)
    return 0


def _check_args(args: argparse.Namespace) -> None:
    """Every numeric flag within its bounds (nan and inf included), or one line saying which."""
    checks = [
        ("--port", 0 <= args.port <= 65535, "between 0 and 65535 (0 picks a free port)"),
        ("--max-batch", 1 <= args.max_batch <= 4096, "between 1 and 4096"),
        (
            "--max-wait-ms",
            math.isfinite(args.max_wait_ms) and 0 <= args.max_wait_ms <= MAX_WAIT_MS,
            f"a number of milliseconds between 0 and {MAX_WAIT_MS}",
        ),
        (
            "--max-body-mb",
            math.isfinite(args.max_body_mb) and 0 < args.max_body_mb <= MAX_BODY_MB,
            f"a size in MiB above 0 and at most {MAX_BODY_MB}",
        ),
        ("--threads", 1 <= args.threads <= 256, "between 1 and 256"),
        ("--http-threads", 1 <= args.http_threads <= 256, "between 1 and 256"),
        ("--max-connections", 1 <= args.max_connections <= 100_000, "between 1 and 100000"),
        (
            "--reload-interval-s",
            math.isfinite(args.reload_interval_s) and 0 <= args.reload_interval_s <= 86_400,
            "seconds between 0 (only on SIGHUP) and 86400",
        ),
    ]
    for flag, ok, expected in checks:
        if not ok:
            raise SensorstreamError(
                f"{flag}: expected {expected}, got {getattr(args, flag[2:].replace('-', '_'))}"
            )
    if args.token_env and args.token_file:
        raise SensorstreamError("--token-env and --token-file: pass one of them, not both")


def _model_reload(
    args: argparse.Namespace, served: ModelManifest, registry: CollectorRegistry
) -> ModelReloader:
    """Hot reload for serve, like the worker's: the same windows and labels, or refused."""
    from prometheus_client import Counter

    from stream.core.model_reload import ModelReloader
    from timesnet.predictor import load_predictor

    reloads = Counter(
        "sensorstream_model_reloads",
        "Model reloads by result: ok (swapped in) or refused (the old model kept serving)",
        ["result"],
        registry=registry,
    )
    for result in ("ok", "refused"):
        reloads.labels(result)

    def check(manifest: ModelManifest) -> None:
        shape = (manifest.window_length, manifest.channels, tuple(manifest.labels))
        if shape != (served.window_length, served.channels, tuple(served.labels)):
            raise SensorstreamError(
                f"window length {manifest.window_length}, {manifest.channels} channels and "
                f"labels {list(manifest.labels)} must equal the served model's; restart serve "
                "to change them"
            )
        reloads.labels("ok").inc()

    reloader = ModelReloader(
        Path(os.path.abspath(args.model)),
        args.reload_interval_s,
        served.version,
        load=lambda path: load_predictor(path, args.device, args.threads, args.runtime),
        check=check,
        on_refused=lambda reason: reloads.labels("refused").inc(),
    )
    reloader.start()
    return reloader


def _wait_for_signal(
    stopping: threading.Event, reloader: ModelReloader, batcher: RequestBatcher
) -> None:
    """Block until SIGTERM or SIGINT sets `stopping`; SIGHUP looks for a new model version."""

    def handler(signum: int, frame: object) -> None:
        stopping.set()

    def reload(signum: int, frame: object) -> None:
        reloader.request_check()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
    try:
        while not stopping.wait(0.2):
            new = reloader.take()
            if new is not None:
                batcher.swap(new)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
