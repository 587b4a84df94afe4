"""A Bulk Data client in the product: SMART Backend Services token, kick-off, polling,
parallel downloads. Used by `manage.py bulk_export` and by end-to-end tests; it talks to
any Bulk Data 2.0 server over HTTP and knows nothing of bulkops' internals.
"""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DOWNLOAD_CHUNK = 256 * 1024


class BulkClientError(Exception):
    """The server refused or failed; the message quotes what it said."""


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


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


def tls_context(verify_tls: bool) -> ssl.SSLContext:
    """The default verifying context, or (when an operator switched verification off for
    a test server with a self-signed certificate) one that accepts any certificate."""
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
) -> HttpResult:
    """One request, the whole answer read. `on_exchange` receives a redacted record of it
    (for the exchange logs of remote exports and server checks)."""
    headers = headers or {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    started = time.monotonic()
    try:
        with urllib.request.urlopen(  # noqa: S310
            request, timeout=timeout, context=tls_context(verify_tls)
        ) as response:
            result = HttpResult(response.status, dict(response.headers.items()), response.read())
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
    _token: str = ""
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
        )
        if result.status != 200:
            raise BulkClientError(f"token request refused: {describe_error(result)}")
        body = result.json()
        self._token = body["access_token"]
        self._expires = time.monotonic() + float(body.get("expires_in", 300))
        return self._token


@dataclass
class ExportOutcome:
    manifest: dict[str, Any]
    files: list[tuple[str, Path, int]] = field(default_factory=list)  # (type, path, lines)
    warnings: list[str] = field(default_factory=list)


class BulkExportClient:
    def __init__(self, base_url: str, tokens: TokenSource, *, workers: int = 4) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.workers = workers

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token()}"}

    def kick_off(self, path: str, params: Sequence[tuple[str, str]]) -> str:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        result = http(
            "GET",
            f"{self.base_url}{path}{query}",
            headers={**self._auth(), "Accept": "application/fhir+json", "Prefer": "respond-async"},
        )
        if result.status != 202:
            raise BulkClientError(f"kick-off refused: {describe_error(result)}")
        return result.headers["Content-Location"]

    def wait(
        self, status_url: str, on_progress: Callable[[str], None], timeout: float = 3600
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = http("GET", status_url, headers={**self._auth(), "Accept": "application/json"})
            if result.status == 200:
                return result.json()
            if result.status not in (202, 429):
                raise BulkClientError(f"export failed: {describe_error(result)}")
            on_progress(result.headers.get("X-Progress", ""))
            time.sleep(float(result.headers.get("Retry-After", "2")))
        raise BulkClientError(f"export did not finish within {timeout:.0f}s")

    def download(self, manifest: dict[str, Any], out_dir: Path) -> ExportOutcome:
        """Fetch every file in parallel. The token goes only to this server, and only when
        the manifest says files need it (never to presigned object-store URLs)."""
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
        same_host = urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(self.base_url).netloc
        headers = {"Accept": "application/fhir+ndjson"}
        if manifest.get("requiresAccessToken") and same_host:
            headers.update(self._auth())
        request = urllib.request.Request(url, headers=headers)  # noqa: S310
        lines = 0
        try:
            with urllib.request.urlopen(request, timeout=300) as response, path.open("wb") as out:  # noqa: S310
                while chunk := response.read(DOWNLOAD_CHUNK):
                    lines += chunk.count(b"\n")
                    out.write(chunk)
        except urllib.error.HTTPError as error:
            raise BulkClientError(f"download of {url} failed: HTTP {error.code}") from None
        return lines


def _diagnostics(path: Path) -> list[str]:
    texts = []
    with path.open("rb") as handle:
        for line in handle:
            outcome = json.loads(line)
            texts += [issue.get("diagnostics", "") for issue in outcome.get("issue", [])]
    return texts
