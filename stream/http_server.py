"""The worker's HTTP side: /metrics, /healthz, /readyz and any routes added later.

A ThreadingHTTPServer on its own daemon thread: scrapes and probes never wait
for the poll loop, and the poll loop never waits for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Response:
    """What a route answers."""

    status: int
    body: bytes
    content_type: str = "application/json"


GetRoute = Callable[[], Response]
PostRoute = Callable[[bytes, dict[str, str]], Response]


class HttpServer:
    """Serves the registry and health probes; routes can be added before `start`."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        alive: Callable[[], bool],
        ready: Callable[[], tuple[bool, str]],
        max_body_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.max_body_bytes = max_body_bytes
        self._get: dict[str, GetRoute] = {
            "/metrics": self._metrics,
            "/healthz": lambda: _probe(alive(), "alive"),
            "/readyz": lambda: _probe(*ready()),
        }
        self._post: dict[str, PostRoute] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_get(self, path: str, route: GetRoute) -> None:
        """Serve GET `path` with `route`."""
        self._get[path] = route

    def add_post(self, path: str, route: PostRoute) -> None:
        """Serve POST `path` with `route(body, headers)`."""
        self._post[path] = route

    @property
    def url(self) -> str:
        """Base URL, with the port actually bound."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Bind and serve on a daemon thread (port 0 picks a free port)."""
        server = _Server((self.host, self.port), _handler_class(self))
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        self._thread.start()
        log.info("http serving url=%s", self.url)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _metrics(self) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def dispatch_get(self, path: str) -> Response:
        """Answer a GET (404 for unknown paths)."""
        route = self._get.get(path.split("?", 1)[0])
        if route is None:
            return Response(404, b'{"error": "not found"}')
        return route()

    def dispatch_post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        """Answer a POST (404 for unknown paths)."""
        route = self._post.get(path.split("?", 1)[0])
        if route is None:
            return Response(404, b'{"error": "not found"}')
        return route(body, headers)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's default of 5 resets bursts of concurrent clients
    daemon_threads = True


def _probe(ok: bool, detail: str) -> Response:
    status = 200 if ok else 503
    text = ("ok" if ok else "not ready") + (f": {detail}" if detail else "")
    return Response(status, text.encode() + b"\n", "text/plain; charset=utf-8")


def _handler_class(owner: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._send(owner.dispatch_get(self.path))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > owner.max_body_bytes:
                self._send(Response(413, b'{"error": "body too large"}'))
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._send(owner.dispatch_post(self.path, body, headers))

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("http " + format, *args)

    return Handler
