"""Server-side fetches of URLs that someone else chose (a client's jwks_uri).

A URL typed into a registration form must not turn bulkops into a proxy for the
network it runs in (SSRF): cloud metadata at 169.254.169.254, the database on
10.0.0.5, an admin port on 127.0.0.1. Every host name is resolved here, every address
it resolves to is checked, and the socket connects to the checked address itself, so a
DNS answer that changes between check and connect (DNS rebinding) gains nothing.
BULKOPS_ALLOW_PRIVATE_FETCH=true lifts the address check for deployments whose key
servers live on a private network, and for tests that serve keys on 127.0.0.1.

Redirects are never followed, proxies from the environment are ignored, and a fetch
has a deadline for the whole response, not only per socket read, and a size cap.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

from django.conf import settings


class FetchError(Exception):
    """The URL could not be fetched; the message says why, for people."""


class AddressRefused(FetchError):
    """The host resolves to an address bulkops does not fetch from."""


@dataclass(frozen=True)
class Fetched:
    body: bytes
    headers: Message


def refusal(address: str) -> str:
    """Why `address` is off limits, or "" when it is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private or not ip.is_global),
    ):
        if flag:
            return kind
    return ""


def guarded_connection(host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to `host`, made only to addresses that pass `refusal`."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FetchError(f"cannot resolve {host}: {exc}") from None
    if not settings.BULKOPS_ALLOW_PRIVATE_FETCH:
        for *_, sockaddr in infos:
            kind = refusal(sockaddr[0])
            if kind:
                raise AddressRefused(
                    f"{host} resolves to {sockaddr[0]}, a {kind} address; bulkops fetches "
                    "only from public addresses unless BULKOPS_ALLOW_PRIVATE_FETCH=true"
                )
    last_error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)  # the checked address, never a fresh lookup
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    raise FetchError(f"cannot connect to {host}: {last_error}")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = guarded_connection(self.host, self.port, self.timeout)


class _GuardedHTTPSConnection(http.client.HTTPSConnection, _GuardedHTTPConnection):
    """HTTPSConnection.connect calls super().connect(), which lands in the guarded
    connect above; certificate and SNI checks still use the host name."""


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_GuardedHTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_GuardedHTTPSConnection, req)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could leave https or the vetted host: refuse to follow it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.OpenerDirector()
for _handler in (
    urllib.request.UnknownHandler(),
    _HTTPHandler(),
    _HTTPSHandler(),
    _NoRedirects(),
    urllib.request.HTTPDefaultErrorHandler(),
    urllib.request.HTTPErrorProcessor(),
):
    _opener.add_handler(_handler)


def fetch(url: str, *, accept: str, max_bytes: int, timeout: float) -> Fetched:
    """GET `url`: at most `max_bytes` of body within `timeout` seconds in all, from a
    public address (see the module docstring), or FetchError."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310
    try:
        with _opener.open(request, timeout=timeout) as response:
            body = _read_capped(response, max_bytes, deadline)
            return Fetched(body=body, headers=response.headers)
    except FetchError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, FetchError):
            raise reason from None
        raise FetchError(str(reason)) from None


def _read_capped(response: Any, max_bytes: int, deadline: float) -> bytes:
    """The body, refused once it passes `max_bytes` or the deadline: a server that
    drips one byte per second cannot hold a token request for minutes."""
    chunks: list[bytes] = []
    size = 0
    # read1: whatever has arrived; read(n) would wait for all n bytes.
    while chunk := response.read1(min(16 * 1024, max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"the response is larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchError("the response took too long")
    return b"".join(chunks)
