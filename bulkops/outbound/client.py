"""The HTTP client every outbound request goes through: httpx on the guarded backend.

One `httpx.Client` per policy (TLS verification on or off, private addresses allowed
or not, the configured proxy) is built once per process and shared by every thread:
loading the system's CA certificates into a TLS context costs about 24 ms of CPU, which
a status poll or a file download must not pay each time (docs/performance.md), and
connections to the same server are kept alive between requests.
"""

from __future__ import annotations

import functools
import http.cookiejar
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
from django.conf import settings

from bulkops import untrusted_json
from bulkops.outbound.guard import (
    FetchError,
    GuardedBackend,
    deadline,
    past_deadline,
    reason,
    refuse_private,
    resolve,
    too_slow,
)
from bulkops.outbound.origins import DEFAULT_PORTS

MAX_REDIRECTS = 5
ONLY_HTTP = "only http and https URLs are fetched"
# httpx's own defaults: idle connections are closed after 5 s, before most servers would
# close them under a request about to be sent.
POOL_LIMITS: dict[str, Any] = {
    "max_connections": 100,
    "max_keepalive_connections": 20,
    "keepalive_expiry": 5.0,
}


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: httpx.Headers  # names compared case-insensitively, as HTTP wants
    body: bytes
    truncated: bool = False  # the answer was longer than max_bytes and was cut there

    def json(self) -> Any:
        return untrusted_json.loads(self.body or b"null")


@dataclass(frozen=True)
class Streamed:
    status: int
    headers: httpx.Headers
    chunks: Iterator[bytes]  # the body, piece by piece as it arrives


@contextmanager
def stream(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: float,
    deadline_seconds: float | None,
    follow_redirects: bool = False,
    verify_tls: bool = True,
    allow_private: bool | None = None,
) -> Iterator[Streamed]:
    """Send one request; the answer (any status) while the block runs.

    `timeout` bounds every wait for the network; `deadline_seconds` the whole exchange,
    connecting, headers and body included (None only where the caller reads a long body
    and can stop it). Redirects are followed only with `follow_redirects`; every hop
    then connects through the guard again, and httpx drops the Authorization header when
    a hop leaves the origin. `allow_private` None means BULKOPS_ALLOW_PRIVATE_FETCH;
    True or False is the caller's own rule (a command run from a shell, our own storage).
    Failures are FetchError with a sentence for people."""
    allow = settings.BULKOPS_ALLOW_PRIVATE_FETCH if allow_private is None else allow_private
    client = _client(verify_tls, allow, settings.BULKOPS_OUTBOUND_PROXY)
    with deadline(deadline_seconds):
        try:
            request = client.build_request(
                method, url, headers=headers, content=content, timeout=timeout
            )
            response = client.send(request, stream=True, follow_redirects=follow_redirects)
            try:
                yield Streamed(response.status_code, response.headers, response.iter_bytes())
            finally:
                response.close()
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FetchError(_client_error(exc)) from None


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: float,
    max_bytes: int,
    truncate: bool = False,
    verify_tls: bool = True,
    allow_private: bool | None = None,
) -> Fetched:
    """Send one request and read its whole answer (any status) within `timeout` seconds
    in all: at most `max_bytes` of body, FetchError beyond that, or with `truncate` the
    first `max_bytes` and `truncated` set (a check reading the head of a large file)."""
    with stream(
        method,
        url,
        headers=headers,
        content=content,
        timeout=timeout,
        deadline_seconds=timeout,
        verify_tls=verify_tls,
        allow_private=allow_private,
    ) as answer:
        chunks: list[bytes] = []
        size = 0
        for chunk in answer.chunks:
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                if not truncate:
                    raise FetchError(f"the response is larger than {max_bytes} bytes")
                cut = b"".join(chunks)[:max_bytes]
                return Fetched(answer.status, answer.headers, cut, truncated=True)
    return Fetched(answer.status, answer.headers, b"".join(chunks))


@functools.cache
def _client(verify_tls: bool, allow_private: bool, proxy: str) -> httpx.Client:
    return httpx.Client(
        transport=GuardedTransport(verify_tls=verify_tls, allow_private=allow_private, proxy=proxy),
        trust_env=False,  # no http_proxy/HTTPS_PROXY, .netrc or SSL_CERT_FILE from httpx
        max_redirects=MAX_REDIRECTS,
        # One client serves every remote server and key server: a cookie one of them
        # sets must not ride along elsewhere (nor make a "no token" check pass).
        cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
        # Bodies as sent: sizes and line counts are the server's bytes, and no
        # compressed answer can expand past the limits in memory.
        headers={"User-Agent": "bulkops", "Accept-Encoding": "identity"},
    )


def _tls_context(verify_tls: bool) -> ssl.SSLContext:
    """The system's verifying context, or (when an operator switched verification off
    for a test server with a self-signed certificate) one that accepts any certificate."""
    context = ssl.create_default_context()
    if not verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class GuardedTransport(httpx.BaseTransport):
    """httpx's transport on httpcore with the guarded network backend.

    Through a proxy the guard sees only the proxy's address, so the target of every
    request (every redirect hop) is checked here first: a name that resolves here to a
    non-public address is refused. A name this machine cannot resolve is left to the
    proxy, whose own rules then decide what it reaches."""

    def __init__(self, *, verify_tls: bool, allow_private: bool, proxy: str) -> None:
        context = _tls_context(verify_tls)
        self._check_targets = bool(proxy) and not allow_private
        self._pool: httpcore.ConnectionPool
        if not proxy:
            backend = GuardedBackend(allow_private=allow_private)
            self._pool = httpcore.ConnectionPool(
                ssl_context=context, network_backend=backend, **POOL_LIMITS
            )
            return
        via = httpx.Proxy(proxy)
        origin = (via.url.host, via.url.port or DEFAULT_PORTS[via.url.scheme])
        self._pool = httpcore.HTTPProxy(
            proxy_url=httpcore.URL(
                scheme=via.url.raw_scheme,
                host=via.url.raw_host,
                port=via.url.port,
                target=via.url.raw_path,
            ),
            proxy_auth=via.raw_auth,
            ssl_context=context,
            network_backend=GuardedBackend(allow_private=allow_private, trusted=origin),
            **POOL_LIMITS,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if self._check_targets and url.scheme in DEFAULT_PORTS:
            try:
                addresses = resolve(url.host, url.port or DEFAULT_PORTS[url.scheme])
            except FetchError:
                addresses = []
            refuse_private(url.host, addresses)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _in_words(url.host):
            answer = self._pool.handle_request(core)
        assert isinstance(answer.stream, Iterable)  # a sync pool's answers are
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Body(answer.stream, url.host),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        self._pool.close()


class _Body(httpx.SyncByteStream):
    def __init__(self, chunks: Iterable[bytes], host: str) -> None:
        self._chunks, self._host = chunks, host

    def __iter__(self) -> Iterator[bytes]:
        with _in_words(self._host):
            yield from self._chunks

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


@contextmanager
def _in_words(host: str) -> Iterator[None]:
    """httpcore's failures as sentences that name the host."""
    try:
        yield
    except httpcore.TimeoutException:
        if past_deadline():
            raise too_slow() from None
        raise FetchError(f"{host} did not answer in time") from None
    except httpcore.ProxyError as exc:
        raise FetchError(f"the proxy did not connect to {host}: {exc}") from None
    except httpcore.RemoteProtocolError as exc:
        raise FetchError(f"{host} did not give a complete HTTP answer: {reason(exc)}") from None
    except httpcore.UnsupportedProtocol:
        raise FetchError(ONLY_HTTP) from None
    except (httpcore.LocalProtocolError, httpcore.NetworkError) as exc:
        raise FetchError(f"the connection to {host} failed: {reason(exc)}") from None


def _client_error(exc: httpx.HTTPError | httpx.InvalidURL) -> str:
    """What httpx itself refused (the transport has already put network failures into
    words), as a sentence."""
    if isinstance(exc, httpx.TooManyRedirects):
        return f"more than {MAX_REDIRECTS} redirects"
    if isinstance(exc, httpx.UnsupportedProtocol):  # a redirect to another scheme
        return ONLY_HTTP
    if isinstance(exc, httpx.InvalidURL):
        return f"the URL is not valid: {exc}"
    return f"the request failed: {exc}"
