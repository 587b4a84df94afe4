"""A Bulk Data client in the product: SMART Backend Services token, kick-off, polling,
parallel downloads. Used by `manage.py bulk_export` and by end-to-end tests; it talks to
any Bulk Data 2.0 server over HTTP and knows nothing of bulkops' internals.
"""

from __future__ import annotations

import email.utils
import functools
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from bulkops import untrusted_json

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DOWNLOAD_CHUNK = 256 * 1024


class BulkClientError(Exception):
    """The server refused or failed; the message quotes what it said."""


class ExportStopped(Exception):
    """The caller asked the client to stop waiting (a cancelled job)."""


ExchangeHook = Callable[["Exchange"], None]


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool = False  # the answer was longer than the reader's max_bytes

    def json(self) -> Any:
        return untrusted_json.loads(self.body or b"null")


@dataclass(frozen=True)
class Exchange:
    """One request and its answer as an exchange log shows it: credentials redacted."""

    method: str
    url: str
    status: int
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    seconds: float


# Query parameters of presigned URLs that work as credentials on their own.
_SECRET_QUERY = re.compile(
    r"(?i)^(x-amz-signature|x-amz-credential|x-amz-security-token|"
    r"signature|sig|token|access_token)$"
)


def redact_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = [
        (name, "REDACTED" if _SECRET_QUERY.match(name) else value)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ]
    return parts._replace(query=urllib.parse.urlencode(query, safe="/:")).geturl()


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    return {
        name: "REDACTED" if name.lower() in ("authorization", "cookie", "set-cookie") else value
        for name, value in headers.items()
    }


@functools.cache
def tls_context(verify_tls: bool) -> ssl.SSLContext:
    """The default verifying context, or (when an operator switched verification off for
    a test server with a self-signed certificate) one that accepts any certificate.

    Built once per process and shared (a context is safe to use from many threads and
    is never changed after this): loading the system's CA certificates costs about 24 ms
    of CPU, which every status poll and file download paid before (docs/performance.md).
    """
    context = ssl.create_default_context()
    if not verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def http(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 60,
    verify_tls: bool = True,
    on_exchange: Callable[[Exchange], None] | None = None,
    max_bytes: int | None = None,
) -> HttpResult:
    """One request, its answer read whole or up to `max_bytes` (so a check of a file of
    unknown size holds a bounded amount). `on_exchange` receives a redacted record of it
    (for the exchange logs of remote exports and server checks)."""
    headers = headers or {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    started = time.monotonic()
    try:
        with urllib.request.urlopen(  # noqa: S310
            request, timeout=timeout, context=tls_context(verify_tls)
        ) as response:
            body = response.read() if max_bytes is None else response.read(max_bytes + 1)
            result = HttpResult(
                response.status,
                dict(response.headers.items()),
                body[:max_bytes] if max_bytes is not None else body,
                truncated=max_bytes is not None and len(body) > max_bytes,
            )
    except urllib.error.HTTPError as error:
        result = HttpResult(error.code, dict(error.headers.items()), error.read())
    if on_exchange:
        on_exchange(
            Exchange(
                method=method,
                url=redact_url(url),
                status=result.status,
                request_headers=redact_headers(headers),
                response_headers=redact_headers(result.headers),
                seconds=time.monotonic() - started,
            )
        )
    return result


def describe_error(result: HttpResult) -> str:
    try:
        body = result.json()
    except ValueError:
        return f"HTTP {result.status}: {result.body[:300]!r}"
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return f"HTTP {result.status}: " + "; ".join(
            issue.get("diagnostics", "") for issue in body.get("issue", [])
        )
    if isinstance(body, dict) and "error" in body:
        return f"HTTP {result.status}: {body['error']}: {body.get('error_description', '')}"
    return f"HTTP {result.status}"


def make_client_assertion(
    client_id: str, private_jwk: dict[str, Any], token_url: str, *, lifetime: int = 240
) -> str:
    """A SMART Backend Services client assertion (spec §7.4), signed RS384 or ES384."""
    key = jwt.PyJWK(private_jwk)
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
    }
    algorithm = private_jwk.get("alg") or ("ES384" if key.key_type == "EC" else "RS384")
    return jwt.encode(
        claims, key.key, algorithm=algorithm, headers={"kid": private_jwk["kid"], "typ": "JWT"}
    )


@dataclass
class TokenSource:
    """Fetches and renews access tokens with a signed client assertion (spec §7.3)."""

    token_url: str
    client_id: str
    private_jwk: dict[str, Any]
    scope: str
    verify_tls: bool = True
    on_exchange: ExchangeHook | None = field(default=None, repr=False)
    _token: str = field(default="", repr=False)
    _expires: float = 0.0

    def token(self) -> str:
        if time.monotonic() < self._expires - 30:
            return self._token
        assertion = make_client_assertion(self.client_id, self.private_jwk, self.token_url)
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
                "scope": self.scope,
            }
        ).encode()
        result = http(
            "POST",
            self.token_url,
            data=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            verify_tls=self.verify_tls,
            on_exchange=self.on_exchange,
        )
        if result.status != 200:
            raise BulkClientError(f"token request refused: {describe_error(result)}")
        try:
            body = result.json()
            self._token = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise BulkClientError("the token response has no access_token") from None
        self._expires = time.monotonic() + float(body.get("expires_in", 300))
        return self._token


@dataclass
class ExportOutcome:
    manifest: dict[str, Any]
    files: list[tuple[str, Path, int]] = field(default_factory=list)  # (type, path, lines)
    warnings: list[str] = field(default_factory=list)


class BulkExportClient:
    """Kick-off, polling, downloads and DELETE against one server. `verify_tls` and
    `on_exchange` apply to every request, file downloads included."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        workers: int = 4,
        verify_tls: bool = True,
        on_exchange: ExchangeHook | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.workers = workers
        self.verify_tls = verify_tls
        self.on_exchange = on_exchange

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token()}"}

    def _http(self, method: str, url: str, headers: dict[str, str]) -> HttpResult:
        return http(
            method, url, headers=headers, verify_tls=self.verify_tls, on_exchange=self.on_exchange
        )

    def kick_off(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        *,
        patience: float = 600,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> str:
        """Start an export; its status URL. A 429 (the server already runs as many of our
        exports as it allows, spec §1.5) is tried again after Retry-After, else after a
        doubling wait, for up to `patience` seconds."""
        deadline = time.monotonic() + patience
        delay = 1.0
        while True:
            result = self._send_kick_off(path, params)
            if result.status != 429 or time.monotonic() >= deadline:
                break
            delay = backoff(result, delay)
            _sleep_unless(min(delay, deadline - time.monotonic()), should_stop)
            if should_stop():
                raise ExportStopped
        if result.status != 202:
            raise BulkClientError(f"kick-off refused: {describe_error(result)}")
        if not result.headers.get("Content-Location"):
            raise BulkClientError("kick-off answered 202 without a Content-Location header")
        return result.headers["Content-Location"]

    def _send_kick_off(self, path: str, params: Sequence[tuple[str, str]]) -> HttpResult:
        """GET with the parameters in the query; POST a Parameters body instead when
        they name patients, which Bulk Data accepts only that way (spec §1.1)."""
        headers = {**self._auth(), "Accept": "application/fhir+json", "Prefer": "respond-async"}
        if any(name == "patient" for name, _ in params):
            return http(
                "POST",
                f"{self.base_url}{path}",
                headers={**headers, "Content-Type": "application/fhir+json"},
                data=json.dumps(parameters_resource(params)).encode(),
                verify_tls=self.verify_tls,
                on_exchange=self.on_exchange,
            )
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return self._http("GET", f"{self.base_url}{path}{query}", headers)

    def wait(
        self,
        status_url: str,
        on_progress: Callable[[str], None],
        timeout: float = 3600,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> dict[str, Any]:
        """Poll until the manifest: sleep what Retry-After asks, and on 429 back off
        (Retry-After if given, else twice the previous wait, at most a minute)."""
        deadline = time.monotonic() + timeout
        delay = 1.0
        while time.monotonic() < deadline:
            if should_stop():
                raise ExportStopped
            result = self._http("GET", status_url, {**self._auth(), "Accept": "application/json"})
            if result.status == 200:
                try:
                    return result.json()
                except ValueError:
                    raise BulkClientError("the manifest is not valid JSON") from None
            if result.status not in (202, 429):
                raise BulkClientError(f"export failed: {describe_error(result)}")
            if result.status == 429:
                delay = backoff(result, delay)
            else:
                on_progress(result.headers.get("X-Progress", ""))
                asked = retry_after(result.headers.get("Retry-After", ""))
                delay = asked if asked is not None else 2.0
            _sleep_unless(delay, should_stop)
        raise BulkClientError(f"export did not finish within {timeout:.0f}s")

    def delete(self, status_url: str) -> int:
        """DELETE the job at the server (cancel, or let it free the files); the status."""
        return self._http(
            "DELETE", status_url, {**self._auth(), "Accept": "application/json"}
        ).status

    def download(self, manifest: dict[str, Any], out_dir: Path) -> ExportOutcome:
        """Fetch every file in parallel into `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        outcome = ExportOutcome(manifest)
        items = [
            (kind, item, out_dir / f"{kind}-{index:04d}-{item['type']}.ndjson")
            for kind in ("output", "deleted", "error")
            for index, item in enumerate(manifest.get(kind, []))
        ]
        with ThreadPoolExecutor(self.workers) as pool:
            counts = list(
                pool.map(lambda entry: self._fetch(entry[1]["url"], entry[2], manifest), items)
            )
        for (kind, item, path), lines in zip(items, counts, strict=True):
            if kind == "error":
                outcome.warnings += _diagnostics(path)
            else:
                outcome.files.append((item["type"] if kind == "output" else "deleted", path, lines))
        return outcome

    def _fetch(self, url: str, path: Path, manifest: dict[str, Any]) -> int:
        lines = 0
        with self.open_file(url, manifest) as chunks, path.open("wb") as out:
            for chunk in chunks:
                lines += chunk.count(b"\n")
                out.write(chunk)
        return lines

    @contextmanager
    def open_file(self, url: str, manifest: dict[str, Any]) -> Iterator[Iterator[bytes]]:
        """Stream one manifest file as chunks. The token goes only to this server's own
        origin, and only when the manifest says files need it: never to presigned
        object-store URLs on another host."""
        headers = {"Accept": "application/fhir+ndjson"}
        if manifest.get("requiresAccessToken") and same_origin(url, self.base_url):
            headers.update(self._auth())
        request = urllib.request.Request(url, headers=headers)  # noqa: S310
        started = time.monotonic()
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=tls_context(self.verify_tls)),
            OriginBoundRedirects(),
        )
        try:
            response = opener.open(request, timeout=300)
        except urllib.error.HTTPError as error:
            self._record("GET", url, error.code, headers, dict(error.headers.items()), started)
            raise BulkClientError(
                f"download of {redact_url(url)} failed: HTTP {error.code}"
            ) from None
        except OSError as error:
            raise BulkClientError(f"download of {redact_url(url)} failed: {error}") from None
        with response:
            self._record("GET", url, response.status, headers, dict(response.headers), started)
            yield iter(lambda: response.read(DOWNLOAD_CHUNK), b"")

    def _record(
        self,
        method: str,
        url: str,
        status: int,
        request_headers: dict[str, str],
        response_headers: dict[str, str],
        started: float,
    ) -> None:
        if self.on_exchange:
            self.on_exchange(
                Exchange(
                    method=method,
                    url=redact_url(url),
                    status=status,
                    request_headers=redact_headers(request_headers),
                    response_headers=redact_headers(response_headers),
                    seconds=time.monotonic() - started,
                )
            )


class OriginBoundRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but drop the Authorization header when one leaves the origin
    (a file endpoint redirecting to a presigned object-store URL)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not same_origin(newurl, req.full_url):
            new.remove_header("Authorization")
        return new


def parameters_resource(params: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Kick-off parameters as a FHIR Parameters resource: patients as references,
    _since as an instant, the rest as strings."""

    def value(name: str, text: str) -> dict[str, Any]:
        if name == "patient":
            return {"valueReference": {"reference": text}}
        return {"valueInstant": text} if name == "_since" else {"valueString": text}

    return {
        "resourceType": "Parameters",
        "parameter": [{"name": name, **value(name, text)} for name, text in params],
    }


def same_origin(url: str, base_url: str) -> bool:
    """Scheme, host and port equal (RFC 6454), so a redirect target elsewhere is not."""
    one, other = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base_url)
    return (one.scheme, one.netloc.lower()) == (other.scheme, other.netloc.lower())


def backoff(result: HttpResult, delay: float) -> float:
    """How long to wait after a 429: what Retry-After asks, else twice the previous wait
    (at most a minute)."""
    asked = retry_after(result.headers.get("Retry-After", ""))
    return asked if asked is not None else min(60.0, delay * 2)


def retry_after(value: str) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP-date; None when absent or unreadable."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _sleep_unless(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Sleep, checking `should_stop` each second so a cancel takes effect promptly."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if should_stop():
            raise ExportStopped
        time.sleep(min(1.0, left))


def _diagnostics(path: Path) -> list[str]:
    texts = []
    with path.open("rb") as handle:
        for line in handle:
            outcome = json.loads(line)
            texts += [issue.get("diagnostics", "") for issue in outcome.get("issue", [])]
    return texts
