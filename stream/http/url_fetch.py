"""Fetching a classify request's CSV from an http(s) URL, safely (see SECURITY.md).

Every hop's host is resolved once and each address checked to be public (or
allowed by name); the connection is pinned to the checked address, redirects are
followed a bounded number of times, and the whole fetch has one deadline and a
size cap. Each failure is a RequestRejected with the status to answer.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
import urllib.parse
from typing import Protocol

from stream.errors import RequestRejected


class FetchLimits(Protocol):
    """The bounds of a URL fetch (EndpointLimits satisfies it)."""

    @property
    def max_csv_bytes(self) -> int: ...

    @property
    def url_timeout_s(self) -> float: ...

    @property
    def fetch_allow_hosts(self) -> frozenset[str]: ...


_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5


def fetch_csv(url: str, limits: FetchLimits) -> bytes:
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


def _fetch_once(url: str, limits: FetchLimits, deadline: float) -> tuple[int, str, bytes]:
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


def _checked_address(host: str, port: int, limits: FetchLimits) -> str:
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
