"""`POST /time-series-classification`: the PaddleX serving contract on our model.

Request: ``{"csv": <base64 of a UTF-8 CSV file, or an http(s) URL of one>}`` in the
PaddleX time-series layout (a ``group_id`` column, a ``time`` column, one column per
channel, an optional ``label`` column that is ignored). One group is one window and
must hold exactly the model's window length of rows: this endpoint rejects other
lengths with 422 instead of padding/cropping, because a label for a series the
model never saw whole (or saw only the end of) is not what the caller asked for.

Success: ``{"logId", "errorCode": 0, "errorMsg": "Success", "result": {"label", "score"}}``.
Extension: a CSV with several groups answers ``"result": {"results": [{"groupId",
"label", "score"}, ...]}`` in the order of each group's first row.
Failure: the HTTP status, ``errorCode`` equal to it, ``errorMsg`` saying what to fix,
and no ``result``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import http.client
import io
import ipaddress
import logging
import socket
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import orjson
from prometheus_client import Counter, Histogram

from stream.errors import RequestRejected
from stream.http.server import HttpServer, Response

if TYPE_CHECKING:
    from timesnet.manifest import ModelManifest

log = logging.getLogger(__name__)

CLASSIFY_PATH = "/time-series-classification"

# The contract of `classify(windows) -> probabilities`:
# - windows: raw (not normalized) float32 [B, L, C], B >= 1, with the served model's
#   L and C, finite values (the endpoint checked them), the groups of one request in
#   CSV order; the callee must not keep or mutate the array.
# - returns probabilities [B, K] (float32 or float64), row i answering window i, K the
#   number of the manifest's labels, in label order.
# - called concurrently from many HTTP handler threads: it must be thread-safe; it may
#   block (gathering batch-mates, waiting for the model) and should be batch-invariant.
# - it must return or raise within a bounded time: raise TimeoutError when it gives up
#   (the endpoint answers 503 "busy"); any other exception answers 500 and is logged.
# RequestBatcher.classify (stream/http/request_batcher.py) fulfils it for `sensorstream serve`.
Classify = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class EndpointLimits:
    """Size and network limits of the endpoint."""

    max_body_bytes: int = 8 * 1024 * 1024  # the JSON request body
    max_csv_bytes: int = 6 * 1024 * 1024  # a CSV fetched from a URL
    url_timeout_s: float = 5.0  # the whole URL fetch, redirects included
    fetch_urls: bool = False  # True lets "csv" name an http(s) URL the server fetches
    fetch_allow_hosts: frozenset[str] = frozenset()  # names fetched even if they are internal


@dataclass(frozen=True)
class _Windows:
    """The windows of one request and their group ids."""

    x: npt.NDArray[np.float32]  # [G, L, C]
    group_ids: list[str]


class ClassifyEndpoint:
    """The route: body bytes -> PaddleX-shaped JSON response."""

    def __init__(
        self,
        classify: Classify,
        labels: tuple[str, ...],
        window_length: int,
        channels: int,
        limits: EndpointLimits,
        requests_total: Counter,
        duration_seconds: Histogram,
    ) -> None:
        self.classify = classify
        self.labels = labels
        self.window_length = window_length
        self.channels = channels
        self.limits = limits
        self._requests_total = requests_total
        self._duration_seconds = duration_seconds

    def __call__(self, body: bytes, headers: dict[str, str]) -> Response:
        """Answer one request; never raises (unexpected errors are logged and answer 500)."""
        log_id = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            result = self._handle(body)
            status, payload = (
                200,
                {"logId": log_id, "errorCode": 0, "errorMsg": "Success", "result": result},
            )
        except RequestRejected as exc:
            status, payload = exc.status, _error(log_id, exc.status, str(exc))
        except Exception:
            log.exception("classify request failed log_id=%s", log_id)
            status, payload = (
                500,
                _error(
                    log_id,
                    500,
                    f"internal error; the server log has the details under logId {log_id}",
                ),
            )
        elapsed_s = time.perf_counter() - started
        self._requests_total.labels(status=str(status)).inc()
        self._duration_seconds.observe(elapsed_s)
        log.info("classify log_id=%s status=%d ms=%.1f", log_id, status, elapsed_s * 1000)
        return Response(status, orjson.dumps(payload))

    def _handle(self, body: bytes) -> dict[str, object]:
        """The steps of one request: body -> CSV bytes -> windows -> probabilities -> result."""
        if len(body) > self.limits.max_body_bytes:
            raise RequestRejected(
                413, f"request body is {len(body)} bytes; the limit is {self.limits.max_body_bytes}"
            )
        value = _csv_field(body)
        raw = self._csv_bytes(value)
        fetched = _is_url(value)
        try:
            windows = self._windows(_utf8(raw), raw)
        except RequestRejected as exc:
            if fetched:  # never read an internal page back to the caller
                raise RequestRejected(
                    exc.status,
                    "the CSV at the URL is not a PaddleX CSV the "
                    "model can classify (its content is not quoted "
                    "back); check it with a base64 request",
                ) from None
            raise
        try:
            probabilities = np.asarray(self.classify(windows.x))  # [G, K]
        except TimeoutError as exc:
            raise RequestRejected(503, f"the model is busy ({exc}); retry later") from exc
        return self._result(probabilities, windows.group_ids)

    def _csv_bytes(self, value: str) -> bytes:
        """The CSV file's bytes: fetched when `value` is a URL, else base64-decoded."""
        scheme = value.partition("://")[0]
        if _is_url(value):  # "://" never occurs in base64 text
            if scheme.lower() not in ("http", "https"):
                raise RequestRejected(
                    400,
                    f"csv URL scheme {scheme!r} is not supported; "
                    "use an http:// or https:// URL or base64 content",
                )
            if not self.limits.fetch_urls:
                raise RequestRejected(
                    400, 'this server does not fetch URLs; send the CSV file as base64 in "csv"'
                )
            return _fetch(value, self.limits)
        try:  # line-wrapped base64 (MIME tools) is accepted: whitespace is dropped first
            raw = base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RequestRejected(
                400,
                f'"csv" is neither an http(s) URL nor valid base64 '
                f"({exc}); base64-encode the CSV file",
            ) from exc
        if not raw:
            raise RequestRejected(400, '"csv" is empty; send a base64-encoded CSV file')
        return raw

    def _windows(self, text: str, raw: bytes) -> _Windows:
        """Parse and check the CSV: the model's channel count and exact window length."""
        from timesnet.errors import DataFormatError
        from timesnet.paddlex_csv import read_paddlex_csv

        try:
            data = read_paddlex_csv(raw)
        except DataFormatError as exc:
            raise RequestRejected(
                422, f"{exc} (expected columns: group_id, time, {self.channels} feature columns)"
            ) from exc
        features, group_ids = _header_and_groups(text)
        if data.n_channels != self.channels:
            raise RequestRejected(
                422,
                f"the CSV has {data.n_channels} feature columns "
                f"({', '.join(features)}) but the model expects "
                f"{self.channels} (one per channel)",
            )
        wrong = np.flatnonzero(data.lengths != self.window_length)
        if wrong.size:
            first = int(wrong[0])
            raise RequestRejected(
                422,
                f"group {group_ids[first]!r} has {data.lengths[first]} "
                f"rows but the model classifies windows of exactly "
                f"{self.window_length} time steps; send {self.window_length}"
                " rows per group_id",
            )
        if not np.isfinite(data.x).all():  # the predictor's own check would fail the batch
            raise RequestRejected(
                422,
                "the CSV has values that are not finite as float32; "
                "send numbers with |x| <= 3.4e38",
            )
        return _Windows(data.x, group_ids)

    def _result(self, probabilities: np.ndarray, group_ids: list[str]) -> dict[str, object]:
        """{"label", "score"} for one group, {"results": [...]} for several."""
        answers = []
        for group_id, row in zip(group_ids, probabilities, strict=True):
            class_id = int(row.argmax())
            answers.append(
                {"groupId": group_id, "label": self.labels[class_id], "score": float(row[class_id])}
            )
        if len(answers) == 1:
            return {"label": answers[0]["label"], "score": answers[0]["score"]}
        return {"results": answers}


def attach_classify_endpoint(
    server: HttpServer,
    classify: Classify,
    manifest: ModelManifest,
    limits: EndpointLimits | None = None,
) -> ClassifyEndpoint:
    """Serve POST /time-series-classification on `server`, answering through `classify`.

    `classify` follows the `Classify` contract above: thread-safe, blocking, bounded
    in time. `manifest` (the served model's) gives the labels, window length and
    channels. The body limit defaults to the server's own. Metrics go to `server.registry`:
    `sensorstream_classify_requests_total{status}` and
    `sensorstream_classify_request_duration_seconds`.
    """
    limits = limits or EndpointLimits(max_body_bytes=server.max_body_bytes)
    requests_total = Counter(
        "sensorstream_classify_requests_total",
        "Classification HTTP requests by response status",
        ["status"],
        registry=server.registry,
    )
    duration_seconds = Histogram(
        "sensorstream_classify_request_duration_seconds",
        "Time to answer a classification HTTP request",
        registry=server.registry,
    )
    endpoint = ClassifyEndpoint(
        classify,
        manifest.labels,
        manifest.window_length,
        manifest.channels,
        limits,
        requests_total,
        duration_seconds,
    )
    server.add_post(CLASSIFY_PATH, endpoint, protected=True)
    return endpoint


def _error(log_id: str, status: int, message: str) -> dict[str, object]:
    """The PaddleX error body."""
    return {"logId": log_id, "errorCode": status, "errorMsg": message}


def _csv_field(body: bytes) -> str:
    """The "csv" string of a JSON object body, or a 400 that says what is missing."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestRejected(
            400,
            f"request body is not JSON ({exc}); send "
            '{"csv": "<base64 of the CSV file or its URL>"}',
        ) from exc
    if not isinstance(request, dict) or "csv" not in request:
        raise RequestRejected(
            400,
            'request body must be a JSON object with a "csv" key '
            "holding the base64 CSV file or its http(s) URL",
        )
    value = request["csv"]
    if not isinstance(value, str):
        raise RequestRejected(400, f'"csv" must be a string, got {type(value).__name__}')
    return value.strip()


def _is_url(value: str) -> bool:
    """True when `value` looks like scheme://..."""
    scheme, separator, _ = value.partition("://")
    return bool(separator) and scheme.isalpha()


def _utf8(raw: bytes) -> str:
    """The CSV text, or a 400 naming the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestRejected(
            400, f"the CSV file is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc


def _header_and_groups(text: str) -> tuple[list[str], list[str]]:
    """(feature column names, group ids in order of first row), by the reader's row rules."""
    reader = csv.reader(io.StringIO(text))
    header = [column.strip() for column in next(reader)]
    group = header.index("group_id")
    features = [c for c in header if c not in ("group_id", "time", "label")]
    seen: dict[str, None] = {}
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        seen.setdefault(row[group].strip(), None)
    return features, list(seen)


_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5


def _fetch(url: str, limits: EndpointLimits) -> bytes:
    """GET `url`: every hop's addresses checked, the connection pinned to one, one deadline."""
    deadline = time.monotonic() + limits.url_timeout_s
    for _ in range(_MAX_REDIRECTS + 1):
        status, location, raw = _fetch_once(url, limits, deadline)
        if status in _REDIRECTS and location:
            url = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
                raise RequestRejected(
                    400,
                    "the csv URL redirects to a scheme other than http(s); send the CSV as base64",
                )
            continue
        if status >= 400:
            raise RequestRejected(502, f"fetching the csv URL failed: HTTP {status}")
        if status != 200:
            raise RequestRejected(502, f"fetching the csv URL answered HTTP {status}, not 200")
        if not raw:
            raise RequestRejected(422, "the csv URL returned an empty file")
        return raw
    raise RequestRejected(502, f"the csv URL redirects more than {_MAX_REDIRECTS} times")


def _fetch_once(url: str, limits: EndpointLimits, deadline: float) -> tuple[int, str, bytes]:
    """(status, Location, body up to the cap) of one GET, to an address that passed the checks."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if not host:
        raise RequestRejected(400, "the csv URL has no host; send http(s)://host/path")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise RequestRejected(400, f"the csv URL's port is not valid ({exc})") from exc
    address = _checked_address(host, port, limits)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    remaining = _remaining(deadline)
    if parts.scheme.lower() == "https":
        connection: http.client.HTTPConnection = _PinnedHTTPS(host, address, port, remaining)
    else:
        connection = _PinnedHTTP(host, address, port, remaining)
    try:
        connection.request(
            "GET",
            path,
            headers={
                "Host": parts.netloc.rpartition("@")[2],
                "User-Agent": "sensorstream",
                "Accept-Encoding": "identity",
            },
        )
        sock = connection.sock  # http.client drops its reference once the answer says close
        answer = connection.getresponse()
        if answer.status != 200:
            return answer.status, answer.getheader("Location") or "", b""
        chunks: list[bytes] = []
        size = 0
        while size <= limits.max_csv_bytes:
            sock.settimeout(_remaining(deadline))  # one deadline for the whole fetch
            chunk = answer.read1(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except RequestRejected:
        raise
    except TimeoutError:
        raise RequestRejected(
            504,
            f"fetching the csv URL took longer than the server allows "
            f"({limits.url_timeout_s:g} s); send the CSV as "
            "base64",
        ) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise RequestRejected(
            502,
            f"fetching the csv URL failed ({exc.__class__.__name__}); "
            "check that the URL is reachable from the server",
        ) from None
    finally:
        connection.close()
    if size > limits.max_csv_bytes:
        raise RequestRejected(
            413, f"the CSV at the URL is larger than {limits.max_csv_bytes} bytes"
        )
    return 200, "", b"".join(chunks)


def _remaining(deadline: float) -> float:
    """Seconds left before the fetch's deadline; a 504 once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise RequestRejected(
            504, "fetching the csv URL took longer than the server allows; send the CSV as base64"
        )
    return left


def _checked_address(host: str, port: int, limits: EndpointLimits) -> str:
    """The one address to connect to: resolved once, every result a public one (or allowed)."""
    allowed = host.lower().rstrip(".") in limits.fetch_allow_hosts
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RequestRejected(
            502, f"the csv URL's host {host!r} does not resolve ({exc.__class__.__name__})"
        ) from None
    addresses = [str(info[4][0]).split("%", 1)[0] for info in infos]
    if not addresses:
        raise RequestRejected(502, f"the csv URL's host {host!r} does not resolve")
    if not allowed:
        for address in addresses:
            if not _is_public(ipaddress.ip_address(address)):
                raise RequestRejected(
                    403,
                    f"the csv URL's host {host!r} is not a public "
                    "address; this server only fetches public hosts "
                    "(an operator can allow it in http.fetch_allow_hosts)",
                )
    return addresses[0]


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for loopback, private, link-local, multicast, reserved, unspecified (mapped too)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not _is_public(embedded):
            return False
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64 reaches the embedded IPv4
            return _is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_private
    )


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to the checked address, whatever the host name resolves to later."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout)
        self.url_host = host


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to the checked address, with the certificate checked against the URL's host."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(address, port, timeout=timeout, context=self.tls)
        self.url_host = host

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.url_host)
