"""POST /time-series-classification over real HTTP: PaddleX shape, every rejection, batching."""

from __future__ import annotations

import base64
import json
import logging
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry

from stream.cli import main
from stream.http.classify import CLASSIFY_PATH, EndpointLimits, attach_classify_endpoint
from stream.http.request_batcher import RequestBatcher
from stream.http.server import HttpServer, Response
from timesnet.predictor import Predictor, load_predictor
from timesnet.readers import read_dataset
from timesnet.uwave import UWAVE_TEST_FILE

REPO = Path(__file__).resolve().parents[3]
MODEL_DIR = REPO / "models" / "uwave"
BODY_LIMIT = 256 * 1024  # one window is ~17 KB of base64; several groups fit
FETCH_LIMIT = 128 * 1024
TOLERANCE = 1e-6
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class CountingPredictor:
    """The real predictor, with a record of the batch sizes it was called with."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()

    def predict_batch(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with self._lock:
            self.batch_sizes.append(len(x))
        return self.predictor.predict_batch(x)


def csv_text(
    windows: np.ndarray,
    group_ids: list[str],
    *,
    label: bool = True,
    features: list[str] | None = None,
) -> str:
    """Windows [G, L, C] as a PaddleX time-series CSV (exact float32 round trip)."""
    names = features or [f"dim_{c}" for c in range(windows.shape[2])]
    lines = ["group_id,time," + ",".join(names) + (",label" if label else "")]
    for group_id, window in zip(group_ids, windows, strict=True):
        for t, sample in enumerate(window):
            values = ",".join(repr(float(v)) for v in sample)
            lines.append(f"{group_id},{t},{values}" + (",1" if label else ""))
    return "\n".join(lines) + "\n"


def b64(data: str | bytes) -> str:
    """Base64 text of UTF-8 `data`."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def post(url: str, body: bytes | dict) -> tuple[int, dict]:
    """POST and return (status, parsed JSON body), for success and error statuses alike."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def windows(uwave_dir: Path) -> np.ndarray:
    """The UWave test windows [320, 315, 3]."""
    return read_dataset(uwave_dir / UWAVE_TEST_FILE, 315).x


@pytest.fixture(scope="module")
def cli_lines(uwave_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """What `sensorstream predict` writes for the UWave test file."""
    out = tmp_path_factory.mktemp("predict") / "lines.jsonl"
    assert (
        main(
            [
                "predict",
                "--model",
                str(MODEL_DIR),
                "--data",
                str(uwave_dir / UWAVE_TEST_FILE),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.fixture
def start_server() -> Iterator[Callable[..., HttpServer]]:
    """Start HTTP servers on 127.0.0.1:0; all are stopped when the test ends."""
    servers: list[HttpServer] = []

    def start(
        classify: Callable | None = None,
        manifest: object = None,
        limits: EndpointLimits | None = None,
    ) -> HttpServer:
        server = HttpServer(
            "127.0.0.1",
            0,
            CollectorRegistry(),
            alive=lambda: True,
            ready=lambda: (True, ""),
            max_body_bytes=2 * BODY_LIMIT,
        )
        if classify is not None:
            attach_classify_endpoint(
                server,
                classify,
                manifest,
                limits
                or EndpointLimits(
                    max_body_bytes=BODY_LIMIT,
                    max_csv_bytes=FETCH_LIMIT,
                    url_timeout_s=2.0,
                    fetch_urls=True,
                    fetch_allow_hosts=frozenset({"127.0.0.1"}),
                ),
            )
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def counting(predictor: Predictor) -> CountingPredictor:
    """A fresh call record around the shipped predictor."""
    return CountingPredictor(predictor)


@pytest.fixture
def endpoint_url(
    start_server: Callable[..., HttpServer], counting: CountingPredictor, predictor: Predictor
) -> Iterator[str]:
    """The endpoint's URL, answering through a RequestBatcher over the real predictor."""
    batcher = RequestBatcher(counting, max_batch=16, max_wait_ms=5.0)
    server = start_server(batcher.classify, predictor.manifest)
    yield server.url + CLASSIFY_PATH
    batcher.close()


def assert_matches(answer: dict, line: dict) -> None:
    """An endpoint answer {label, score} equals one `sensorstream predict` line."""
    assert answer["label"] == line["label"]
    assert answer["score"] == pytest.approx(line["score"], abs=TOLERANCE)


def test_one_window_answers_like_paddlex_with_the_predict_commands_label_and_score(
    endpoint_url: str, windows: np.ndarray, cli_lines: list[dict]
) -> None:
    status, body = post(endpoint_url, {"csv": b64(csv_text(windows[5:6], ["0"]))})
    assert status == 200
    assert set(body) == {"logId", "errorCode", "errorMsg", "result"}
    assert UUID4.match(body["logId"])
    assert (body["errorCode"], body["errorMsg"]) == (0, "Success")
    assert set(body["result"]) == {"label", "score"}
    assert_matches(body["result"], cli_lines[5])


def test_several_groups_answer_a_results_list_in_first_row_order(
    endpoint_url: str, windows: np.ndarray, cli_lines: list[dict]
) -> None:
    text = csv_text(windows[[40, 41, 42]], ["walk-9", "a", "17"], label=False)
    status, body = post(endpoint_url, {"csv": b64(text)})
    assert (status, body["errorCode"]) == (200, 0)
    results = body["result"]["results"]
    assert [r["groupId"] for r in results] == ["walk-9", "a", "17"]
    for result, case in zip(results, (40, 41, 42), strict=True):
        assert set(result) == {"groupId", "label", "score"}
        assert_matches(result, cli_lines[case])


def test_a_csv_url_is_fetched_and_classified(
    endpoint_url: str,
    start_server: Callable[..., HttpServer],
    windows: np.ndarray,
    cli_lines: list[dict],
) -> None:
    files = start_server()
    files.add_get(
        "/case.csv", lambda: Response(200, csv_text(windows[9:10], ["g"]).encode(), "text/csv")
    )
    status, body = post(endpoint_url, {"csv": files.url + "/case.csv"})
    assert (status, body["errorCode"], body["errorMsg"]) == (200, 0, "Success")
    assert_matches(body["result"], cli_lines[9])


def test_line_wrapped_base64_is_accepted(
    endpoint_url: str, windows: np.ndarray, cli_lines: list[dict]
) -> None:
    encoded = base64.encodebytes(csv_text(windows[11:12], ["0"]).encode()).decode()
    status, body = post(endpoint_url, {"csv": encoded})
    assert status == 200
    assert_matches(body["result"], cli_lines[11])


def one_window(windows: np.ndarray) -> str:
    """A valid single-window CSV."""
    return csv_text(windows[0:1], ["0"])


def with_value(text: str, value: str) -> str:
    """The CSV with line 5's first feature value replaced by `value`."""
    lines = text.splitlines()
    cells = lines[4].split(",")
    cells[2] = value
    lines[4] = ",".join(cells)
    return "\n".join(lines) + "\n"


INVALID_BODIES: list[tuple[str, Callable[[np.ndarray], bytes | dict], int, str]] = [
    ("not json", lambda w: b"{csv: nope", 400, "request body is not JSON"),
    ("json array", lambda w: [1, 2], 400, 'JSON object with a "csv" key'),
    ("no csv key", lambda w: {"file": b64(one_window(w))}, 400, 'with a "csv" key'),
    ("csv not a string", lambda w: {"csv": 12}, 400, '"csv" must be a string, got int'),
    ("empty csv", lambda w: {"csv": ""}, 400, '"csv" is empty'),
    ("bad base64", lambda w: {"csv": "not*base64!"}, 400, "nor valid base64"),
    (
        "not utf-8",
        lambda w: {"csv": b64(one_window(w).replace("dim_0", "d\u00e9").encode("latin-1"))},
        400,
        "not UTF-8 text (byte 15)",
    ),
    (
        "no time column",
        lambda w: {"csv": b64(one_window(w).replace("time", "t", 1))},
        422,
        "no time column 'time'",
    ),
    (
        "no group column",
        lambda w: {"csv": b64(one_window(w).replace("group_id", "g", 1))},
        422,
        "no group column 'group_id'",
    ),
    (
        "two channels",
        lambda w: {"csv": b64(csv_text(w[0:1, :, :2], ["0"]))},
        422,
        "has 2 feature columns (dim_0, dim_1) but the model expects 3",
    ),
    (
        "four channels",
        lambda w: {"csv": b64(csv_text(np.concatenate([w[0:1], w[0:1, :, :1]], axis=2), ["0"]))},
        422,
        "has 4 feature columns (dim_0, dim_1, dim_2, dim_3) but the model expects 3",
    ),
    (
        "short group",
        lambda w: {"csv": b64(csv_text(w[0:1, :300], ["0"]))},
        422,
        "group '0' has 300 rows but the model classifies windows of exactly 315 time steps",
    ),
    (
        "long second group",
        lambda w: {
            "csv": b64(
                csv_text(w[0:1], ["a"]) + "".join(f"b,{t},1.0,2.0,3.0,1\n" for t in range(316))
            )
        },
        422,
        "group 'b' has 316 rows",
    ),
    (
        "extra field",
        lambda w: {"csv": b64(one_window(w).replace("\n0,3,", "\n0,3,7.5,", 1))},
        422,
        "line 5: expected 6 fields like the header, found 7",
    ),
    (
        "header only",
        lambda w: {"csv": b64("group_id,time,dim_0,dim_1,dim_2\n")},
        422,
        "no data rows",
    ),
    (
        "body too large",
        lambda w: {"csv": "A" * (BODY_LIMIT + 10)},
        413,
        f"the limit is {BODY_LIMIT}",
    ),
    ("ftp url", lambda w: {"csv": "ftp://127.0.0.1/case.csv"}, 400, "scheme 'ftp'"),
    (
        "1e39 overflows float32",
        lambda w: {"csv": b64(with_value(one_window(w), "1e39"))},
        422,
        "line 5: column 'dim_0': expected a finite number within float32 range",
    ),
    (
        "duplicate columns",
        lambda w: {"csv": b64(one_window(w).replace("dim_1", "dim_0", 1))},
        422,
        "column names ['dim_0'] appear more than once",
    ),
    (
        "140,000-character field",
        lambda w: {"csv": b64(one_window(w).replace("\n0,3,", "\n0,3," + "1" * 140_000, 1))},
        422,
        "not readable as CSV",
    ),
]


@pytest.mark.parametrize(
    "make_body,status,message",
    [case[1:] for case in INVALID_BODIES],
    ids=[case[0] for case in INVALID_BODIES],
)
def test_invalid_bodies_answer_their_status_as_error_code_with_a_message(
    endpoint_url: str,
    windows: np.ndarray,
    make_body: Callable[[np.ndarray], bytes | dict],
    status: int,
    message: str,
    counting: CountingPredictor,
) -> None:
    body = make_body(windows)
    code, answer = post(
        endpoint_url, body if isinstance(body, bytes) else json.dumps(body).encode()
    )
    assert code == status
    assert set(answer) == {"logId", "errorCode", "errorMsg"}
    assert answer["errorCode"] == status
    assert message in answer["errorMsg"]
    assert UUID4.match(answer["logId"])
    assert counting.batch_sizes == []  # refused before the model


def test_a_non_numeric_value_names_its_line_and_column(
    endpoint_url: str, windows: np.ndarray
) -> None:
    lines = one_window(windows).splitlines()
    lines[4] = "0,3,abc," + lines[4].split(",", 3)[3]
    status, answer = post(endpoint_url, {"csv": b64("\n".join(lines))})
    assert (status, answer["errorCode"]) == (422, 422)
    assert (
        "line 5: column 'dim_0': expected a finite number within float32 range "
        "(|x| <= 3.4e38), found 'abc'"
    ) in answer["errorMsg"]


def test_url_failures_answer_502_and_oversized_downloads_413(
    endpoint_url: str, start_server: Callable[..., HttpServer]
) -> None:
    files = start_server()
    files.add_get("/big.csv", lambda: Response(200, b"x" * (FETCH_LIMIT + 1), "text/csv"))
    closed = start_server()
    closed_url = closed.url
    closed.stop()
    cases = [
        (files.url + "/missing.csv", 502, "HTTP 404"),
        (closed_url + "/case.csv", 502, "fetching the csv URL failed"),
        (files.url + "/big.csv", 413, f"larger than {FETCH_LIMIT} bytes"),
    ]
    for url, status, message in cases:
        code, answer = post(endpoint_url, {"csv": url})
        assert (code, answer["errorCode"]) == (status, status), url
        assert message in answer["errorMsg"]


def test_urls_are_refused_when_fetching_is_off(
    start_server: Callable[..., HttpServer], predictor: Predictor
) -> None:
    server = start_server(
        predictor.predict_batch, predictor.manifest, EndpointLimits(fetch_urls=False)
    )
    code, answer = post(server.url + CLASSIFY_PATH, {"csv": "http://127.0.0.1:1/x.csv"})
    assert (code, answer["errorCode"]) == (400, 400)
    assert "does not fetch URLs" in answer["errorMsg"]


def _raise(error: BaseException) -> Callable[[np.ndarray], np.ndarray]:
    def classify(x: np.ndarray) -> np.ndarray:
        raise error

    return classify


@pytest.mark.parametrize(
    "error,status,message",
    [
        (RuntimeError("boom"), 500, "internal error; the server log has the details under logId"),
        (TimeoutError("no answer within 30 s"), 503, "the model is busy (no answer within 30 s)"),
    ],
)
def test_classify_failures_answer_500_or_503_and_are_logged(
    start_server: Callable[..., HttpServer],
    predictor: Predictor,
    windows: np.ndarray,
    error: BaseException,
    status: int,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="stream.http.classify")
    server = start_server(_raise(error), predictor.manifest)
    code, answer = post(server.url + CLASSIFY_PATH, {"csv": b64(one_window(windows))})
    assert (code, answer["errorCode"]) == (status, status)
    assert message in answer["errorMsg"]
    assert f"log_id={answer['logId']} status={status}" in caplog.text
    if status == 500:
        assert answer["logId"] in answer["errorMsg"] and "boom" in caplog.text


def test_sixteen_concurrent_requests_are_answered_correctly_in_fewer_predictor_calls(
    start_server: Callable[..., HttpServer],
    predictor: Predictor,
    windows: np.ndarray,
    cli_lines: list[dict],
) -> None:
    counting = CountingPredictor(predictor)
    batcher = RequestBatcher(counting, max_batch=16, max_wait_ms=250.0)
    url = start_server(batcher.classify, predictor.manifest).url + CLASSIFY_PATH
    cases = list(range(100, 116))
    bodies = {case: {"csv": b64(csv_text(windows[case : case + 1], ["0"]))} for case in cases}
    answers: dict[int, tuple[int, dict]] = {}
    failures: list[str] = []
    barrier = threading.Barrier(len(cases))

    def send(case: int) -> None:
        barrier.wait()
        try:
            answers[case] = post(url, bodies[case])
        except OSError as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=send, args=(case,)) for case in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    batcher.close()
    # Resets here mean the server's listen backlog (socketserver's default is 5) overflowed.
    assert failures == [], "connections refused/reset; HttpServer needs a larger request_queue_size"
    for case in cases:
        status, body = answers[case]
        assert status == 200
        assert_matches(body["result"], cli_lines[case])
    assert sum(counting.batch_sizes) == len(cases)
    assert len(counting.batch_sizes) < len(cases)
    assert max(counting.batch_sizes) > 1


def test_the_batcher_keeps_requests_whole_and_sends_an_oversized_one_alone(
    predictor: Predictor, windows: np.ndarray
) -> None:
    counting = CountingPredictor(predictor)
    batcher = RequestBatcher(counting, max_batch=4, max_wait_ms=300.0)
    sizes = (3, 3, 6)
    results: dict[int, np.ndarray] = {}

    def send(i: int) -> None:
        results[i] = batcher.classify(windows[10 * i : 10 * i + sizes[i]])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(sizes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    batcher.close()
    assert sorted(counting.batch_sizes) == [3, 3, 6]
    for i, size in enumerate(sizes):
        expected = predictor.predict_batch(windows[10 * i : 10 * i + size])
        np.testing.assert_allclose(results[i], expected, atol=TOLERANCE, rtol=0)


def test_the_batcher_times_out_and_withdraws_a_request_it_could_not_answer(
    predictor: Predictor, windows: np.ndarray
) -> None:
    release = threading.Event()

    class Stalled:
        def predict_batch(self, x: np.ndarray) -> np.ndarray:
            release.wait(10)
            return predictor.predict_batch(x)

    batcher = RequestBatcher(Stalled(), max_batch=1, max_wait_ms=0.0, timeout_s=0.3)
    first_outcome: list[BaseException] = []

    def ask_first() -> None:
        try:
            batcher.classify(windows[:1])
        except TimeoutError as exc:  # it is stalled inside the model past the timeout too
            first_outcome.append(exc)

    first = threading.Thread(target=ask_first)
    first.start()
    with pytest.raises(TimeoutError, match="no answer from the model within 0.3 s"):
        batcher.classify(windows[1:2])
    release.set()
    first.join(timeout=10)
    batcher.close()
    # close() waits timeout_s (0.3 s) at most; the released batch may need longer on a busy machine
    batcher._thread.join(timeout=10)
    assert batcher.batches == 1  # the withdrawn request never reached the model
    assert len(first_outcome) == 1  # the one being predicted timed out for its caller


def test_serve_command_answers_over_http_and_stops_on_sigterm(
    windows: np.ndarray, cli_lines: list[dict]
) -> None:
    command = [
        str(Path(sys.executable).parent / "sensorstream"),
        "serve",
        "--model",
        str(MODEL_DIR),
        "--port",
        "0",
        "--max-batch",
        "8",
        "--max-wait-ms",
        "2",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        first_line = process.stdout.readline()
        url = re.search(r"(http://\S+)", first_line).group(1)
        assert url.endswith(CLASSIFY_PATH)
        status, body = post(url, {"csv": b64(csv_text(windows[200:201], ["0"]))})
        assert status == 200
        assert_matches(body["result"], cli_lines[200])
    finally:
        process.send_signal(signal.SIGTERM)
        remaining, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert remaining.strip() == "stopped"


def test_serve_command_refuses_a_missing_model_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--model", str(tmp_path / "none"), "--port", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_serve_swaps_in_a_new_model_version_on_sighup_and_answers_with_it(
    windows: np.ndarray, predictor: Predictor, tmp_path: Path
) -> None:
    tcn = load_predictor(REPO / "models" / "uwave-tcn")
    link = tmp_path / "model"
    link.symlink_to(REPO / "models" / "uwave-tcn")
    command = [
        str(Path(sys.executable).parent / "sensorstream"),
        "serve",
        "--model",
        str(link),
        "--port",
        "0",
        "--reload-interval-s",
        "0",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    body = {"csv": b64(csv_text(windows[5:6], ["0"]))}
    try:
        url = re.search(r"(http://\S+)", process.stdout.readline()).group(1)
        expected = float(tcn.predict_batch(windows[5:6]).max())
        assert post(url, body)[1]["result"]["score"] == pytest.approx(expected, abs=1e-5)
        staged = tmp_path / "next"
        staged.symlink_to(MODEL_DIR)
        staged.replace(link)
        process.send_signal(signal.SIGHUP)
        expected = float(predictor.predict_batch(windows[5:6]).max())
        deadline = time.monotonic() + 60
        while post(url, body)[1]["result"]["score"] != pytest.approx(expected, abs=1e-5):
            assert time.monotonic() < deadline, "serve kept answering with the old model"
            time.sleep(0.2)
        metrics = urllib.request.urlopen(url.replace(CLASSIFY_PATH, "/metrics")).read().decode()
        assert 'sensorstream_model_reloads_total{result="ok"} 1.0' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        tcn.close()
    assert process.returncode == 0


def test_the_request_batcher_answers_with_a_swapped_model_from_the_next_batch() -> None:
    class Constant:
        def __init__(self, value: float) -> None:
            self.value, self.closed = value, False
            self.manifest = SimpleNamespace(version=str(value))

        def predict_batch(self, x: np.ndarray) -> np.ndarray:
            return np.full((len(x), 2), self.value, dtype=np.float32)

        def close(self) -> None:
            self.closed = True

    old, new = Constant(0.25), Constant(0.75)
    batcher = RequestBatcher(old, max_batch=4, max_wait_ms=1)  # type: ignore[arg-type]
    window = np.zeros((1, 3, 2), dtype=np.float32)
    assert batcher.classify(window)[0, 0] == 0.25
    batcher.swap(new)  # type: ignore[arg-type]
    assert batcher.classify(window)[0, 0] == 0.75
    assert old.closed and not new.closed
    batcher.close()
