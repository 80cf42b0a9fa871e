"""Fetching a CSV from a URL: internal addresses refused in every spelling, redirects
checked again, one deadline, fetched content never quoted back, off unless turned on."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from stream.http.classify import CLASSIFY_PATH, EndpointLimits, attach_classify_endpoint
from stream.http.request_batcher import RequestBatcher
from stream.http.server import HttpServer
from tests.stream.http.servers import in_process_server
from timesnet.predictor import Predictor


class Canary(http.server.ThreadingHTTPServer):
    """A loopback server that counts every request; optionally redirects or dribbles."""

    def __init__(
        self,
        address: tuple[str, int] = ("127.0.0.1", 0),
        redirect: str = "",
        body: bytes = b"group_id,time,a\n",
        dribble: bool = False,
    ) -> None:
        self.hits = 0
        canary = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                canary.hits += 1
                if redirect:
                    self.send_response(302)
                    self.send_header("Location", redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) * (8 if dribble else 1)))
                self.end_headers()
                try:
                    for _ in range(8 if dribble else 1):
                        self.wfile.write(body)
                        self.wfile.flush()
                        if dribble:
                            time.sleep(0.5)
                except OSError:  # the fetcher gave up: that is the point of the dribble
                    pass

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(address, Handler)
        self.daemon_threads = True
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def fetching(predictor: Predictor) -> Iterator[Callable[..., tuple[str, int]]]:
    """A classify server with URL fetching on, and an allow-list for 'localhost' only."""
    made: list[tuple[HttpServer, RequestBatcher]] = []

    def make(allow: frozenset[str] = frozenset({"localhost"})) -> tuple[str, int]:
        batcher = RequestBatcher(predictor)
        server = HttpServer(
            "127.0.0.1", 0, CollectorRegistry(), alive=lambda: True, ready=lambda: (True, "")
        )
        attach_classify_endpoint(
            server,
            batcher.classify,
            predictor.manifest,
            EndpointLimits(fetch_urls=True, fetch_allow_hosts=allow, url_timeout_s=1.5),
        )
        server.start()
        made.append((server, batcher))
        return "127.0.0.1", server.port

    yield make
    for server, batcher in made:
        server.stop()
        batcher.close()


def fetch_answer(target: tuple[str, int], url: str) -> tuple[int, str]:
    """(status, errorMsg) of a classify request naming `url`."""
    connection = http.client.HTTPConnection(*target, timeout=30)
    connection.request("POST", CLASSIFY_PATH, body=json.dumps({"csv": url}).encode())
    answer = connection.getresponse()
    payload = json.loads(answer.read())
    connection.close()
    return answer.status, payload.get("errorMsg", "")


def test_every_internal_address_form_is_refused_and_the_canary_sees_nothing(
    fetching: Callable[..., tuple[str, int]],
) -> None:
    target = fetching(frozenset())
    canary = Canary()
    try:
        canary6 = Canary(("::1", 0)) if socket.has_ipv6 else None
    except OSError:
        canary6 = None
    p = canary.port
    forms = [
        f"http://127.0.0.1:{p}/",
        f"http://localhost:{p}/",
        f"http://2130706433:{p}/",
        f"http://0177.0.0.1:{p}/",
        f"http://0x7f.0.0.1:{p}/",
        f"http://0x7f000001:{p}/",
        f"http://127.1:{p}/",
        f"http://[::ffff:127.0.0.1]:{p}/",
        f"http://0.0.0.0:{p}/",
        f"http://0:{p}/",
        f"https://127.0.0.1:{p}/",
        f"http://127.0.0.1.:{p}/",
        f"http://user@127.0.0.1:{p}/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://[::]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
    ]
    if canary6 is not None:
        forms += [f"http://[::1]:{canary6.port}/", f"http://[0:0:0:0:0:0:0:1]:{canary6.port}/"]
    else:
        forms += ["http://[::1]/"]
    try:
        for url in forms:
            status, message = fetch_answer(target, url)
            # 403 refused by address; 502 only where the name does not resolve at all
            assert status == 403 or (status == 502 and "does not resolve" in message), url
        hits = canary.hits + (canary6.hits if canary6 else 0)
        print(f"\nSSRF forms tried: {len(forms)}, canary hits: {hits}")
        assert hits == 0
    finally:
        canary.stop()
        if canary6 is not None:
            canary6.stop()


def test_a_redirect_from_an_allowed_host_to_loopback_is_refused(
    fetching: Callable[..., tuple[str, int]],
) -> None:
    target = fetching()
    inner = Canary()
    forms = [
        f"http://127.0.0.1:{inner.port}/metrics",
        f"http://2130706433:{inner.port}/",
        f"http://[::ffff:127.0.0.1]:{inner.port}/",
    ]
    outers = [Canary(redirect=url) for url in forms]
    try:
        for outer in outers:
            status, _ = fetch_answer(target, f"http://localhost:{outer.port}/case.csv")
            assert status == 403
        assert [outer.hits for outer in outers] == [1, 1, 1]
        assert inner.hits == 0
    finally:
        for server in (inner, *outers):
            server.stop()


def test_a_fetched_page_is_never_quoted_back(fetching: Callable[..., tuple[str, int]]) -> None:
    target = fetching()
    secret = Canary(body=b"# HELP sensorstream_secret_total the internal page\n")
    try:
        status, message = fetch_answer(target, f"http://localhost:{secret.port}/metrics")
        assert status == 422
        assert "secret" not in message and "HELP" not in message
    finally:
        secret.stop()


def test_a_url_fetch_has_one_deadline_for_the_whole_download(
    fetching: Callable[..., tuple[str, int]],
) -> None:
    target = fetching()
    slow = Canary(body=b"12345678", dribble=True)  # 8 bytes every 0.5 s, 4 s in all
    try:
        started = time.monotonic()
        status, message = fetch_answer(target, f"http://localhost:{slow.port}/x.csv")
        assert status == 504, message
        assert time.monotonic() - started < 2.5
    finally:
        slow.stop()


def test_urls_are_refused_unless_fetching_is_turned_on(predictor: Predictor) -> None:
    server, batcher = in_process_server(predictor)
    canary = Canary()
    try:
        status, message = fetch_answer(
            ("127.0.0.1", server.port), f"http://127.0.0.1:{canary.port}/"
        )
        assert (status, canary.hits) == (400, 0)
        assert "does not fetch URLs" in message
    finally:
        canary.stop()
        server.stop()
        batcher.close()
