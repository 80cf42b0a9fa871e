"""The HTTP side under hostile input: fuzzed bodies, CSVs and framing, slow clients, tokens."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from stream.cli import main
from stream.http.classify import CLASSIFY_PATH, attach_classify_endpoint
from stream.http.request_batcher import RequestBatcher
from stream.http.server import HttpServer
from tests.stream.http.servers import BODY_LIMIT, in_process_server
from timesnet.predictor import Predictor
from timesnet.readers import read_dataset
from timesnet.uwave import UWAVE_TEST_FILE

REPO = Path(__file__).resolve().parents[3]
MODEL_DIR = REPO / "models" / "uwave"
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture(scope="module")
def window(uwave_dir: Path) -> np.ndarray:
    """One UWave test window [315, 3]."""
    return read_dataset(uwave_dir / UWAVE_TEST_FILE, 315).x[0]


def csv_of(window: np.ndarray, header: str = "group_id,time,a,b,c") -> str:
    """A valid one-group CSV."""
    rows = [f"0,{t},{s[0]!r},{s[1]!r},{s[2]!r}" for t, s in enumerate(window.tolist())]
    return header + "\n" + "\n".join(rows) + "\n"


def b64(text: str | bytes) -> str:
    """Base64 of UTF-8 text."""
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


@pytest.fixture(scope="module", params=["server", "serve"])
def target(request: pytest.FixtureRequest, predictor: Predictor) -> Iterator[tuple[str, int]]:
    """(host, port) of a running classify server: in this process, or `sensorstream serve`."""
    if request.param == "server":
        server, batcher = in_process_server(predictor)
        yield "127.0.0.1", server.port
        server.stop()
        batcher.close()
        return
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "serve",
            "--model",
            str(MODEL_DIR),
            "--port",
            "0",
            "--max-body-mb",
            "1",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = re.search(r"http://127\.0\.0\.1:(\d+)", process.stdout.readline())
    assert url, "serve did not print its URL"
    yield "127.0.0.1", int(url.group(1))
    process.terminate()
    process.wait(timeout=30)


STATUSES: list[int] = []


def post(target: tuple[str, int], body: bytes, headers: dict[str, str] | None = None) -> int:
    """POST to the classify path; the status, with a JSON errorMsg on every refusal."""
    connection = http.client.HTTPConnection(*target, timeout=30)
    try:
        try:
            connection.request(
                "POST",
                CLASSIFY_PATH,
                body=body,
                headers=headers or {"Content-Type": "application/json"},
            )
        except (BrokenPipeError, ConnectionResetError):
            pass  # a 413 from the headers closes the connection while the body is still going
        answer = connection.getresponse()
        payload = json.loads(answer.read())
    finally:
        connection.close()
    if answer.status != 200:
        assert payload["errorCode"] == answer.status and payload["errorMsg"]
    STATUSES.append(answer.status)
    return answer.status


def raw_request(target: tuple[str, int], data: bytes) -> int | None:
    """Send raw bytes, half-close, and return the status line's code (None: no answer)."""
    received = b""
    with socket.create_connection(target, timeout=10) as sock:
        try:  # the server may answer and close before it has read everything
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError:
            pass
    match = re.match(rb"HTTP/1\.[01] (\d{3})", received)
    status = int(match.group(1)) if match else None
    STATUSES.append(status or 0)
    return status


def assert_still_answers(target: tuple[str, int], window: np.ndarray) -> None:
    """A valid request after the fuzzing is classified."""
    assert post(target, json.dumps({"csv": b64(csv_of(window))}).encode()) == 200


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "1e39",
            "-1e39",
            "3.5e38",
            "nan",
            "inf",
            "-inf",
            "1e-400",
            "0x10",
            "1_0",
            "",
            " ",
            "abc",
            "1e309",
            "\u0661",
            "x" * 200_000,
        ]
    ),
)
NAMES = st.sampled_from(["group_id", "time", "label", "a", "b", "c", "a", "x" * 200_000, ""])


@st.composite
def csv_texts(draw: st.DrawFn, window: np.ndarray) -> str:
    """Mostly-valid CSVs with a fuzzed header, fuzzed cells and fuzzed row counts."""
    if draw(st.booleans()):
        header = "group_id,time," + ",".join(draw(st.lists(NAMES, min_size=0, max_size=5)))
    else:
        header = "group_id,time,a,b,c"
    lines = csv_of(window, header).splitlines()
    rows = draw(st.integers(0, 320))
    lines = lines[: rows + 1] + [lines[-1]] * max(0, rows - 315)
    for _ in range(draw(st.integers(0, 3))):
        if len(lines) > 1:
            i = draw(st.integers(1, len(lines) - 1))
            cells = lines[i].split(",")
            cells[draw(st.integers(0, len(cells) - 1))] = draw(NUMBERS)
            lines[i] = ",".join(cells)
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n", "\r\n", '"', "\x00"]))


BODIES = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=256).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["csv", "x"]), inner, max_size=2)
        ),
        max_leaves=6,
    ).map(lambda v: json.dumps(v).encode()),
    st.text(max_size=300).map(lambda t: json.dumps({"csv": t}).encode()),
    st.binary(max_size=300).map(lambda b: json.dumps({"csv": b64(b)}).encode()),
    st.sampled_from(
        [
            b'{"csv": "http://127.0.0.1:1/x"}',
            b'{"csv": "file:///etc/passwd"}',
            b'{"csv": "' + b"A" * (BODY_LIMIT + 1) + b'"}',
        ]
    ),
)


@FUZZ
@given(body=BODIES)
def test_fuzzed_bodies_never_answer_5xx(target: tuple[str, int], body: bytes) -> None:
    assert post(target, body) < 500


@FUZZ
@given(data=st.data())
def test_fuzzed_csv_contents_never_answer_5xx(
    target: tuple[str, int], window: np.ndarray, data: st.DataObject
) -> None:
    text = data.draw(csv_texts(window))
    assert post(target, json.dumps({"csv": b64(text)}).encode()) < 500


LENGTHS = st.sampled_from(
    [
        "-1",
        "abc",
        "5, 5",
        "99999999999999999999",
        "0",
        "5",
        " 5",
        "+5",
        "0x5",
        "5\r\nContent-Length: 6",
        str(BODY_LIMIT * 4),
    ]
)
FRAMING_HEADERS = st.lists(
    st.sampled_from(
        [
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding: x",
            "Content-Type: application/json",
            "Expect: 100-continue",
            "Connection: close",
            "X-Long: " + "h" * 70_000,
            "Host: a",
            "Host: b",
            "Bad Header",
            ": empty",
        ]
    ),
    max_size=3,
)


@settings(FUZZ, max_examples=150)
@given(
    length=st.none() | LENGTHS,
    headers=FRAMING_HEADERS,
    body=st.binary(max_size=64),
    version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", ""]),
)
def test_fuzzed_framing_never_answers_5xx(
    target: tuple[str, int], length: str | None, headers: list[str], body: bytes, version: str
) -> None:
    lines = [f"POST {CLASSIFY_PATH} {version}".strip(), "Host: 127.0.0.1", *headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    status = raw_request(target, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    assert status is None or status < 500


def test_the_server_still_answers_after_the_fuzzing(
    target: tuple[str, int], window: np.ndarray
) -> None:
    assert_still_answers(target, window)
    fivexx = [s for s in STATUSES if s >= 500]
    print(f"\nfuzzed requests so far: {len(STATUSES)}, 5xx: {len(fivexx)}")
    assert not fivexx


@pytest.mark.parametrize(
    "header",
    ["Content-Length: -1", "Content-Length: abc", "Content-Length: 5\r\nContent-Length: 6"],
)
def test_malformed_content_length_answers_400_at_once(predictor: Predictor, header: str) -> None:
    server, batcher = in_process_server(predictor)
    try:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(f"POST {CLASSIFY_PATH} HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n".encode())
            answer = b""  # no half-close: the server must not wait for a body
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400")
        assert b'"errorCode":400' in answer
        assert time.monotonic() - started < 2
    finally:
        server.stop()
        batcher.close()


def test_a_body_over_the_limit_gets_a_json_413_from_its_headers_alone(predictor: Predictor) -> None:
    server, batcher = in_process_server(predictor)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(
                f"POST {CLASSIFY_PATH} HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {20 * 1024 * 1024}\r\n\r\n".encode()
            )
            answer = b""  # 20 MiB announced, none sent
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413")
        assert b'"errorCode":413' in answer
    finally:
        server.stop()
        batcher.close()


def test_a_chunked_body_is_read_and_classified(predictor: Predictor, window: np.ndarray) -> None:
    server, batcher = in_process_server(predictor)
    try:
        body = json.dumps({"csv": b64(csv_of(window))}).encode()
        chunks = (
            b"".join(
                b"%x\r\n%s\r\n" % (len(body[i : i + 4000]), body[i : i + 4000])
                for i in range(0, len(body), 4000)
            )
            + b"0\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(
                f"POST {CLASSIFY_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                "\r\nConnection: close\r\n\r\n".encode()
                + chunks
            )
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    finally:
        server.stop()
        batcher.close()


def _threads_and_rss() -> tuple[int, float]:
    """(threads of this process, RSS in MiB)."""
    status = Path("/proc/self/status").read_text()
    rss_kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    return threads, rss_kib / 1024


def test_a_thousand_slow_clients_hold_no_threads_and_a_valid_request_answers_within_a_second(
    predictor: Predictor, window: np.ndarray
) -> None:
    server, batcher = in_process_server(predictor, threads=8)
    body = json.dumps({"csv": b64(csv_of(window))}).encode()
    target = ("127.0.0.1", server.port)
    post(target, body)  # warm the model
    threads_before, rss_before = _threads_and_rss()
    slow: list[socket.socket] = []
    stop = threading.Event()
    try:
        for i in range(1000):
            sock = socket.create_connection(target, timeout=5)
            if i % 3 == 1:  # half a header
                sock.sendall(b"POST " + CLASSIFY_PATH.encode() + b" HTTP/1.1\r\nHost:")
            elif i % 3 == 2:  # headers, then a trickle of a body that never ends
                sock.sendall(
                    f"POST {CLASSIFY_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: "
                    f"{len(body)}\r\n\r\n".encode()
                    + body[:100]
                )
            slow.append(sock)

        def dribble() -> None:
            while not stop.wait(0.2):
                for sock in slow[2::30]:
                    sock.sendall(b"A")

        dribbler = threading.Thread(target=dribble, daemon=True)
        dribbler.start()
        time.sleep(1.0)
        started = time.monotonic()
        assert post(target, body) == 200
        elapsed_s = time.monotonic() - started
        threads_during, rss_during = _threads_and_rss()
    finally:
        stop.set()
        for sock in slow:
            sock.close()
        server.stop()
        batcher.close()
    print(
        f"\n1,000 slow clients: valid request {elapsed_s * 1000:.0f} ms, threads "
        f"{threads_before} -> {threads_during}, RSS {rss_before:.0f} -> {rss_during:.0f} MiB"
    )
    assert elapsed_s < 1.0
    assert threads_during <= threads_before + 1  # the dribbler; the server adds none
    assert rss_during - rss_before < 100


def test_the_bearer_token_guards_classify_and_the_status_page_but_not_probes(
    predictor: Predictor, window: np.ndarray
) -> None:
    batcher = RequestBatcher(predictor)
    server = HttpServer(
        "127.0.0.1",
        0,
        CollectorRegistry(),
        alive=lambda: True,
        ready=lambda: (True, ""),
        token="s3cret-token",
    )
    attach_classify_endpoint(server, batcher.classify, predictor.manifest)
    from stream.http.server import Response

    server.add_get("/status.json", lambda: Response(200, b"{}"), protected=True)
    server.start()
    target = ("127.0.0.1", server.port)
    body = json.dumps({"csv": b64(csv_of(window))}).encode()
    try:
        assert post(target, body) == 401
        assert post(target, body, {"Authorization": "Bearer wrong"}) == 401
        assert post(target, body, {"Authorization": "Bearer s3cret-token"}) == 200
        for path, expected in (("/status.json", 401), ("/metrics", 200), ("/healthz", 200)):
            connection = http.client.HTTPConnection(*target, timeout=10)
            connection.request("GET", path)
            assert connection.getresponse().status == expected, path
            connection.close()
        assert "s3cret" not in repr(server)
    finally:
        server.stop()
        batcher.close()


def test_a_failing_batch_is_retried_one_by_one_so_only_the_bad_request_fails(
    predictor: Predictor, window: np.ndarray
) -> None:
    class Picky:
        manifest = predictor.manifest

        def predict_batch(self, x: np.ndarray) -> np.ndarray:
            if (x[:, 0, 0] == 42.0).any():  # stands in for any input the predictor rejects
                raise ValueError("predictor refused the batch")
            return predictor.predict_batch(x)

    batcher = RequestBatcher(Picky(), max_batch=32, max_wait_ms=50.0)
    good = window[None].astype(np.float32)
    bad = good.copy()
    bad[0, 0, 0] = 42.0
    outcomes: dict[int, str] = {}

    def ask(i: int) -> None:
        try:
            batcher.classify(bad if i == 7 else good)
            outcomes[i] = "ok"
        except ValueError:
            outcomes[i] = "failed"

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    batcher.close()
    assert outcomes == {i: "failed" if i == 7 else "ok" for i in range(20)}


def test_the_batcher_refuses_non_finite_windows_before_batching(
    predictor: Predictor, window: np.ndarray
) -> None:
    batcher = RequestBatcher(predictor)
    x = window[None].copy()
    x[0, 3, 1] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        batcher.classify(x)
    batcher.close()
    assert batcher.batches == 0


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--port", "70000", "--port: expected between 0 and 65535"),
        ("--max-body-mb", "nan", "--max-body-mb: expected a size in MiB"),
        ("--max-wait-ms", "inf", "--max-wait-ms: expected a number of milliseconds"),
        ("--max-batch", "0", "--max-batch: expected between 1 and 4096"),
    ],
)
def test_serve_refuses_out_of_range_flags_with_one_line(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--model", str(MODEL_DIR), flag, value]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_http_section_defaults_to_no_fetching_and_no_token() -> None:
    from stream.config.loading import load_config

    config = load_config(None, [], environ={})
    assert (config.http.fetch_urls, config.http.fetch_allow_hosts) == (False, [])
    assert (config.http.token_env, config.http.token_file) == (None, None)
    config = load_config(
        None,
        [
            "http.fetch_urls=true",
            'http.fetch_allow_hosts=["files.lan"]',
            'http.token_env="SENSORSTREAM_TOKEN"',
        ],
        environ={},
    )
    assert config.http.fetch_urls and config.http.fetch_allow_hosts == ["files.lan"]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (['http.token_env="A"', 'http.token_file="/x"'], "set token_env or token_file, not both"),
        (["http.threads=0"], "http.threads"),
        (["http.read_timeout_s=nan"], "http.read_timeout_s"),
    ],
)
def test_bad_http_settings_are_one_line_config_errors(overrides: list[str], message: str) -> None:
    from stream.config.loading import load_config
    from stream.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, overrides, environ={})


def test_the_token_comes_from_its_env_or_file_and_a_missing_one_says_where(
    tmp_path: Path,
) -> None:
    from stream.errors import ConfigError
    from stream.http.server import read_token

    assert read_token(None, None) is None
    assert read_token("T", None, {"T": "abc\n"}) == "abc"
    (tmp_path / "token").write_text("from-file\n")
    assert read_token(None, tmp_path / "token") == "from-file"
    with pytest.raises(ConfigError, match="http.token_env: the environment variable T is not"):
        read_token("T", None, {})
    with pytest.raises(ConfigError, match="http.token_file: cannot read"):
        read_token(None, tmp_path / "missing")
    with pytest.raises(ConfigError, match="is empty"):
        read_token("T", None, {"T": " "})
