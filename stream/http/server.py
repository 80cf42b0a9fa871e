"""The worker's HTTP side: /metrics, /healthz, /readyz and any routes added later.

Served by waitress on its own daemon thread: one asyncore loop reads every
connection without blocking and hands only complete requests to a fixed pool of
worker threads, so idle or dribbling clients cost a socket, never a thread. It speaks
HTTP/1.1 with keep-alive and chunked bodies, answers malformed framing (a bad or
doubled Content-Length) with 400, refuses a body over the limit from its headers
before reading it, and closes connections silent for `read_timeout_s`.
"""

from __future__ import annotations

import hmac
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from stream.config.secrets import read_secret

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Response:
    """What a route answers."""

    status: int
    body: bytes
    content_type: str = "application/json"


GetRoute = Callable[[], Response]
PostRoute = Callable[[bytes, dict[str, str]], Response]


@dataclass(frozen=True)
class ServerLimits:
    """Connection, thread and timeout bounds of the server."""

    threads: int = 8  # requests handled at once; the rest wait, fully read, in the loop
    max_connections: int = 2000  # open sockets; past it accepting pauses
    read_timeout_s: float = 30.0  # a connection silent this long is closed
    max_header_bytes: int = 64 * 1024


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
        limits: ServerLimits | None = None,
        token: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.max_body_bytes = max_body_bytes
        self.limits = limits or ServerLimits()
        self._token = token.encode() if token else None
        self._get: dict[str, GetRoute] = {
            "/metrics": self._metrics,
            "/healthz": lambda: _probe(alive(), "alive"),
            "/readyz": lambda: _probe(*ready()),
        }
        self._post: dict[str, PostRoute] = {}
        self._protected: set[str] = set()
        self._server: TcpWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # the token stays out of any log line that prints the server
        return f"HttpServer(url={self.url!r}, token={'set' if self._token else 'none'})"

    def add_get(self, path: str, route: GetRoute, protected: bool = False) -> None:
        """Serve GET `path` with `route`; `protected` routes need the bearer token if one is set."""
        self._get[path] = route
        if protected:
            self._protected.add(path)

    def add_post(self, path: str, route: PostRoute, protected: bool = False) -> None:
        """Serve POST `path` with `route(body, headers)`."""
        self._post[path] = route
        if protected:
            self._protected.add(path)

    @property
    def url(self) -> str:
        """Base URL, with the port actually bound."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Bind and serve on a daemon thread (port 0 picks a free port)."""
        adj = Adjustments(
            host=self.host,
            port=self.port,
            threads=self.limits.threads,
            connection_limit=self.limits.max_connections,
            channel_timeout=self.limits.read_timeout_s,
            cleanup_interval=max(1, int(self.limits.read_timeout_s // 2)),
            max_request_body_size=self.max_body_bytes,
            max_request_header_size=self.limits.max_header_bytes,
            ident="sensorstream",
            expose_tracebacks=False,
            clear_untrusted_proxy_headers=True,
            asyncore_use_poll=True,  # select() fails past 1,024 open sockets
            backlog=1024,
        )
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        server = _Server(self._wsgi, map={}, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0])
        self.port = server.effective_port
        self._server = server
        self._thread = threading.Thread(target=server.run, name="http", daemon=True)
        self._thread.start()
        log.info(
            "http serving url=%s threads=%d max_connections=%d",
            self.url,
            self.limits.threads,
            self.limits.max_connections,
        )

    def stop(self) -> None:
        """Stop serving and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        # closing every socket from the loop's own thread empties its map, which ends the loop
        try:
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        except OSError:
            # the loop already ended and closed its trigger (EBADF): close what is left here
            wasyncore.close_all(server._map)
        if self._thread is not None:
            self._thread.join(timeout=5)
        server.task_dispatcher.shutdown(timeout=5)

    def _metrics(self) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def dispatch_get(self, path: str) -> Response:
        """Answer a GET (404 for unknown paths)."""
        route = self._get.get(path.split("?", 1)[0])
        if route is None:
            return _json_error(404, f"no GET route {path.split('?', 1)[0]!r}")
        return route()

    def dispatch_post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        """Answer a POST (404 for unknown paths)."""
        route = self._post.get(path.split("?", 1)[0])
        if route is None:
            return _json_error(404, f"no POST route {path.split('?', 1)[0]!r}")
        return route(body, headers)

    def _authorized(self, path: str, environ: dict[str, Any]) -> bool:
        if self._token is None or path not in self._protected:
            return True
        scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self._token
        )

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        response = self._answer(environ)
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
        ]
        if response.status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="sensorstream"'))
        start_response(f"{response.status} {_REASONS.get(response.status, 'Status')}", headers)
        return [response.body]

    def _answer(self, environ: dict[str, Any]) -> Response:
        """The route's answer; never raises (a route's bug answers 500 and is logged)."""
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "") or "/"
        try:
            if not self._authorized(path, environ):
                return _json_error(
                    401, 'this route needs the bearer token: send "Authorization: Bearer <token>"'
                )
            if method in ("GET", "HEAD"):
                return self.dispatch_get(path)
            if method == "POST":
                body = environ["wsgi.input"].read()
                headers = {
                    key[5:].replace("_", "-").lower(): str(value)
                    for key, value in environ.items()
                    if key.startswith("HTTP_")
                }
                if environ.get("CONTENT_TYPE"):
                    headers["content-type"] = environ["CONTENT_TYPE"]
                return self.dispatch_post(path, body, headers)
            return _json_error(405, f"method {method} is not served; use GET or POST")
        except Exception:
            log_id = str(uuid.uuid4())
            log.exception("http route failed path=%s log_id=%s", path, log_id)
            return _json_error(
                500, f"internal error; the server log has the details under logId {log_id}", log_id
            )


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _json_error(status: int, message: str, log_id: str | None = None) -> Response:
    """The PaddleX-shaped error body every route and the server itself answer with."""
    payload = {"logId": log_id or str(uuid.uuid4()), "errorCode": status, "errorMsg": message}
    return Response(status, orjson.dumps(payload))


class _JsonErrorTask(ErrorTask):
    """waitress's own refusals (413 from the headers, 400 framing) as PaddleX-shaped JSON."""

    def execute(self) -> None:
        error = self.request.error
        # waitress says 501 for a Transfer-Encoding it does not read; that is the client's framing
        code, reason = (error.code, error.reason) if error.code < 500 else (400, "Bad Request")
        body = _json_error(code, f"{reason}: {error.body}").body
        self.status = f"{code} {reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    error_task_class = _JsonErrorTask


class _Server(TcpWSGIServer):
    channel_class = _Channel


def _probe(ok: bool, detail: str) -> Response:
    status = 200 if ok else 503
    text = ("ok" if ok else "not ready") + (f": {detail}" if detail else "")
    return Response(status, text.encode() + b"\n", "text/plain; charset=utf-8")


def read_token(
    env_name: str | None, path: Path | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The bearer token from `env_name` or the file at `path`; None when neither is set."""
    return read_secret(
        env_name,
        path,
        env_key="http.token_env",
        file_key="http.token_file",
        what="bearer token",
        strip=True,
        environ=environ,
    )
