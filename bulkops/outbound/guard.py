"""The SSRF guard where it cannot be bypassed: at the socket.

httpcore opens every connection through a network backend; `GuardedBackend` is the one
bulkops gives it. It resolves the host itself, checks every address the name resolves
to, and connects to a checked address, never to a second lookup, so a DNS answer that
changes between check and connect (DNS rebinding) gains nothing. Every connection is
made this way, redirect hops and retries included, whatever asked for it.

Its streams also keep the deadline of the request being served (`deadline`): each
socket wait is cut short at the moment the whole exchange must be over, so a server
that drips one byte at a time, in the headers or in the body, cannot hold a request
for longer than its caller allowed.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore


class FetchError(Exception):
    """The URL could not be fetched; the message says why, for people."""


class AddressRefused(FetchError):
    """The host resolves to an address bulkops does not fetch from."""


AddressInfo = tuple[Any, ...]  # one entry of socket.getaddrinfo


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


def resolve(host: str, port: int) -> list[AddressInfo]:
    """Every TCP address `host` has, or FetchError saying it has none."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FetchError(f"could not resolve {host}: {reason(exc)}") from None


def refuse_private(host: str, addresses: Iterable[AddressInfo]) -> None:
    """AddressRefused unless every address passes `refusal`: one private answer among
    public ones is enough to be turned away, since any of them may be the one used."""
    for *_, sockaddr in addresses:
        kind = refusal(sockaddr[0])
        if kind:
            what = (
                f"{host} is a {kind} address"
                if host == sockaddr[0]
                else f"{host} resolves to {sockaddr[0]}, a {kind} address"
            )
            raise AddressRefused(
                f"{what}; bulkops fetches only from public addresses unless "
                "BULKOPS_ALLOW_PRIVATE_FETCH=true"
            )


def underlying(error: BaseException) -> BaseException:
    """The exception httpcore wrapped in its own (an OSError, an ssl.SSLError): its
    first argument, which survives the connection pool re-raising it `from None`."""
    wrapped = error.args[0] if error.args else None
    return wrapped if isinstance(wrapped, BaseException) else error


def reason(error: BaseException | None) -> str:
    """The operating system's words for a network failure, as a sentence fragment."""
    cause = underlying(error) if error is not None else None
    if isinstance(cause, TimeoutError | httpcore.TimeoutException):
        return "no answer in time"
    text = str(getattr(cause, "strerror", None) or cause or "unknown error").rstrip(".")
    return text[:1].lower() + text[1:]


# (moment the exchange must be over, its length in seconds) of the request this thread
# is serving; None while no deadline applies (a file download the caller can stop).
_deadline: ContextVar[tuple[float, float] | None] = ContextVar("outbound_deadline", default=None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Every socket wait inside the block ends by `seconds` from now (None: no limit)."""
    token = _deadline.set(None if seconds is None else (time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def past_deadline() -> bool:
    current = _deadline.get()
    return current is not None and time.monotonic() >= current[0]


def too_slow() -> FetchError:
    current = _deadline.get()
    seconds = f" (more than {current[1]:g} seconds in all)" if current else ""
    return FetchError(f"the response took too long{seconds}")


def _remaining(timeout: float | None) -> float | None:
    """`timeout` for the next socket wait, shortened to what is left of the deadline."""
    current = _deadline.get()
    if current is None:
        return timeout
    left = current[0] - time.monotonic()
    if left <= 0:
        raise too_slow()
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake keeps the deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        """TLS as httpcore does it, checking the certificate against the host name of
        the URL (httpcore passes it), not the address the socket was connected to."""
        try:
            secured = self._inner.start_tls(ssl_context, server_hostname, _remaining(timeout))
        except httpcore.ConnectError as exc:
            cause = underlying(exc)
            if isinstance(cause, ssl.SSLCertVerificationError):
                raise FetchError(
                    f"the TLS certificate of {server_hostname} could not be verified: "
                    f"{cause.verify_message}"
                ) from None
            if isinstance(cause, ssl.SSLError):
                raise FetchError(
                    f"the TLS handshake with {server_hostname} failed: {cause.reason or cause}"
                ) from None
            raise
        return DeadlineStream(secured)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses that pass `refusal`, unless
    `allow_private`; `trusted` is the configured proxy's (host, port), which bulkops
    reaches wherever it is because an operator chose it, not a form."""

    def __init__(self, *, allow_private: bool, trusted: tuple[str, int] | None = None) -> None:
        self.allow_private = allow_private
        self.trusted = trusted
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve(host, port)
        if not self.allow_private and (host, port) != self.trusted:
            refuse_private(host, addresses)
        failure: Exception | None = None
        for *_, sockaddr in addresses:
            try:
                # An address literal: the plain backend connects without another lookup.
                stream = self._sockets.connect_tcp(
                    sockaddr[0], port, _remaining(timeout), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return DeadlineStream(stream)
        raise FetchError(f"could not connect to {host} port {port}: {reason(failure)}")
