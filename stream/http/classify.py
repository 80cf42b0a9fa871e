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
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import orjson
from prometheus_client import Counter, Histogram

from stream.errors import RequestRejected
from stream.http.classify_request import csv_field, header_and_groups, is_url, utf8_text
from stream.http.server import HttpServer, Response
from stream.http.url_fetch import fetch_csv

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
        value = csv_field(body)
        raw = self._csv_bytes(value)
        fetched = is_url(value)
        try:
            windows = self._windows(utf8_text(raw), raw)
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
        if is_url(value):  # "://" never occurs in base64 text
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
            return fetch_csv(value, self.limits)
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
        features, group_ids = header_and_groups(text)
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
