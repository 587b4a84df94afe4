"""A Bulk Data client in the product: SMART Backend Services token, kick-off, polling,
parallel downloads. Used by `manage.py bulk_export`, remote exports, server checks and
the bench; it talks to any Bulk Data 2.0 server over HTTP and knows nothing of bulkops'
internals. Every request goes through the guarded client (`bulkops.outbound`).
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from django.conf import settings

from bulkops import outbound, untrusted_json
from bulkops.fhir.params import V2, V4
from bulkops.outbound import FetchError, same_origin

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ANSWER_LIMIT = 16 * 1024 * 1024  # tokens, manifests, outcomes: a few kilobytes to megabytes
DOWNLOAD_IDLE_TIMEOUT = 300.0  # seconds a file download may wait for its next bytes
ERROR_TEXT_BYTES = 4096  # of a failed download's answer, read to quote its reason
QUOTE_CHARS = 300  # of a server's own error text in our messages
MIN_WAIT = 1.0  # shortest wait a Retry-After can ask for
# IssueType's transient branch: a status poll failing with these failed for a moment,
# not the export, and is tried again later (spec §2.2).
TRANSIENT_CODES = frozenset(
    {"transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled"}
)


class BulkClientError(Exception):
    """The server refused or failed; the message quotes what it said."""


class ExportStopped(Exception):
    """The caller asked the client to stop waiting (a cancelled job)."""


ExchangeHook = Callable[["Exchange"], None]


HttpResult = outbound.Fetched  # status, case-insensitive headers, body, truncated, json()


@dataclass(frozen=True)
class Exchange:
    """One request and its answer as an exchange log shows it: credentials redacted."""

    method: str
    url: str
    status: int
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    seconds: float
    note: str = ""  # what the client made of the answer when it did not simply go on


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


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: "REDACTED" if name.lower() in ("authorization", "cookie", "set-cookie") else value
        for name, value in headers.items()
    }


def _as_sent(headers: httpx.Headers) -> dict[str, str]:
    """Response headers spelt as the server sent them (httpx lowercases names), for
    people reading an exchange log; a repeated header's values joined by commas."""
    named: dict[str, str] = {}
    for raw_name, raw_value in headers.raw:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        named[name] = f"{named[name]}, {value}" if name in named else value
    return named


def _record_exchange(
    on_exchange: ExchangeHook | None,
    method: str,
    url: str,
    status: int,
    request_headers: Mapping[str, str],
    response_headers: httpx.Headers,
    started: float,
) -> None:
    """Hand `on_exchange` the redacted record of one answered request."""
    if on_exchange:
        on_exchange(
            Exchange(
                method=method,
                url=redact_url(url),
                status=status,
                request_headers=redact_headers(request_headers),
                response_headers=redact_headers(_as_sent(response_headers)),
                seconds=time.monotonic() - started,
            )
        )


def http(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 60,
    verify_tls: bool = True,
    allow_private: bool | None = None,
    on_exchange: ExchangeHook | None = None,
    max_bytes: int | None = None,
) -> HttpResult:
    """One request, its answer read whole within `timeout` seconds in all, or up to
    `max_bytes` (so a check of a file of unknown size holds a bounded amount).
    `allow_private` None follows BULKOPS_ALLOW_PRIVATE_FETCH (bulkops.outbound).
    `on_exchange` receives a redacted record of it (for the exchange logs of remote
    exports and server checks). No answer at all is FetchError."""
    headers = headers or {}
    started = time.monotonic()
    answer = outbound.request(
        method,
        url,
        headers=headers,
        content=data,
        timeout=timeout,
        max_bytes=ANSWER_LIMIT if max_bytes is None else max_bytes,
        truncate=max_bytes is not None,
        verify_tls=verify_tls,
        allow_private=allow_private,
    )
    _record_exchange(on_exchange, method, url, answer.status, headers, answer.headers, started)
    return answer


def describe_error(result: HttpResult) -> str:
    """The status and the server's own words: an OperationOutcome's diagnostics, an OAuth
    error, else the start of the body as text."""
    try:
        body = result.json()
    except ValueError:
        body = result.body.decode("utf-8", "replace")
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        said = "; ".join(_issue_texts(body))
    elif isinstance(body, dict) and "error" in body:
        said = f"{body['error']}: {body.get('error_description', '')}"
    else:
        said = body if isinstance(body, str) else ""
    said = " ".join(said.split())
    if len(said) > QUOTE_CHARS:
        said = said[:QUOTE_CHARS] + " …"
    return f"HTTP {result.status}: {said}" if said else f"HTTP {result.status}"


def _issues(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    issues = outcome.get("issue")
    return [i for i in issues if isinstance(i, dict)] if isinstance(issues, list) else []


def _issue_texts(outcome: dict[str, Any]) -> list[str]:
    """Each issue's diagnostics, else its details' text, else its code."""
    texts = []
    for issue in _issues(outcome):
        details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
        text = issue.get("diagnostics") or details.get("text") or issue.get("code") or ""
        texts.append(str(text))
    return texts


def transient_code(result: HttpResult) -> str:
    """The issue code of a 5xx answer whose OperationOutcome has only issues of the
    transient branch (spec §2.2: the poll failed for a moment, try again); "" for any
    other answer, which means the export itself failed."""
    if result.status < 500:
        return ""
    try:
        body = result.json()
    except ValueError:
        return ""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    codes = [issue.get("code") for issue in _issues(body)]
    return str(codes[0]) if codes and all(code in TRANSIENT_CODES for code in codes) else ""


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
    allow_private: bool | None = None  # None: BULKOPS_ALLOW_PRIVATE_FETCH decides
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
            allow_private=self.allow_private,
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


@dataclass(frozen=True)
class Pause:
    """A wait between two requests, and (for the exchange log) why it is not simply the
    one the server asked for."""

    seconds: float
    note: str = ""

    def bounded(self, longest: float, left: float) -> Pause:
        """At most `longest` seconds, and over when the deadline `left` seconds away is."""
        limit, why = (longest, "the longest wait allowed") if longest <= left else (left, "")
        if self.seconds <= limit:
            return self
        limit = max(0.0, limit)
        why = why or "the export's deadline comes first"
        note = f"Waiting {limit:,.0f} s instead of {self.seconds:,.0f} s: {why}."
        return Pause(limit, f"{self.note} {note}".strip())


class BulkExportClient:
    """Kick-off, polling, downloads and DELETE against one server. `verify_tls`,
    `allow_private` (None: BULKOPS_ALLOW_PRIVATE_FETCH decides) and `on_exchange` apply
    to every request, file downloads included. No wait between polls is longer than
    `max_wait` seconds, whatever the server asks; a status poll failing with a transient
    error is tried again up to `transient_retries` times (None: BULKOPS_REMOTE_MAX_WAIT
    and BULKOPS_REMOTE_TRANSIENT_RETRIES)."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        workers: int = 4,
        verify_tls: bool = True,
        allow_private: bool | None = None,
        on_exchange: ExchangeHook | None = None,
        max_wait: float | None = None,
        transient_retries: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.workers = workers
        self.verify_tls = verify_tls
        self.allow_private = allow_private
        self.on_exchange = on_exchange
        self.max_wait = settings.BULKOPS_REMOTE_MAX_WAIT if max_wait is None else max_wait
        self.transient_retries = (
            settings.BULKOPS_REMOTE_TRANSIENT_RETRIES
            if transient_retries is None
            else transient_retries
        )

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token()}"}

    def _http(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        data: bytes | None = None,
        *,
        hook: ExchangeHook | None = None,
    ) -> HttpResult:
        """One request; its exchange goes to `hook` instead of `on_exchange` when given
        (to be logged once the client knows what to make of the answer, `_log`)."""
        return http(
            method,
            url,
            headers=headers,
            data=data,
            verify_tls=self.verify_tls,
            allow_private=self.allow_private,
            on_exchange=hook or self.on_exchange,
        )

    def _log(self, seen: list[Exchange], note: str = "") -> None:
        if self.on_exchange:
            for exchange in seen:
                self.on_exchange(dataclasses.replace(exchange, note=note) if note else exchange)

    def kick_off(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        *,
        patience: float = 600,
        should_stop: Callable[[], bool] = lambda: False,
        lenient: bool = False,
        version: str = V2,
    ) -> str:
        """Start an export; its status URL. A 429 (the server already runs as many of our
        exports as it allows, spec §1.5) is tried again after Retry-After, else after a
        doubling wait, for up to `patience` seconds. `lenient` sends
        `Prefer: handling=lenient`: the server may drop what it cannot honour (spec §1.2).
        `version` V4 kicks off as the 4.0.0 ballot wants (v4 digest B1, B2)."""
        deadline = time.monotonic() + patience
        delay = 1.0
        while True:
            seen: list[Exchange] = []
            result = self._send_kick_off(
                path, params, seen.append, lenient=lenient, version=version
            )
            if result.status != 429 or time.monotonic() >= deadline:
                self._log(seen)
                break
            pause = Pause(backoff(result, delay)).bounded(
                self.max_wait, deadline - time.monotonic()
            )
            self._log(seen, pause.note)
            delay = pause.seconds
            _sleep_unless(delay, should_stop)
            if should_stop():
                raise ExportStopped
        if result.status != 202:
            raise BulkClientError(f"kick-off refused: {describe_error(result)}")
        if not result.headers.get("Content-Location"):
            raise BulkClientError("kick-off answered 202 without a Content-Location header")
        return result.headers["Content-Location"]

    def _send_kick_off(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        hook: ExchangeHook,
        *,
        lenient: bool,
        version: str,
    ) -> HttpResult:
        """GET with the parameters in the query; POST a Parameters body instead when
        they name patients, which Bulk Data accepts only that way (spec §1.1), and
        always for the 4.0.0 ballot, whose kick-off is POST only (v4 digest B1)."""
        prefer = "respond-async, handling=lenient" if lenient else "respond-async"
        headers = {**self._auth(), "Accept": "application/fhir+json", "Prefer": prefer}
        if version == V4 or any(name == "patient" for name, _ in params):
            body = parameters_v4(params) if version == V4 else parameters_resource(params)
            return self._http(
                "POST",
                f"{self.base_url}{path}",
                {**headers, "Content-Type": "application/fhir+json"},
                json.dumps(body).encode(),
                hook=hook,
            )
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return self._http("GET", f"{self.base_url}{path}{query}", headers, hook=hook)

    def wait(
        self,
        status_url: str,
        on_progress: Callable[[str], None],
        timeout: float = 3600,
        should_stop: Callable[[], bool] = lambda: False,
        on_partial: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the manifest: wait what Retry-After asks (seconds or an HTTP-date),
        else 2 s; on 429 back off (Retry-After if given, else twice the previous wait, at
        most a minute); on a transient error (spec §2.2) poll again after 1, 2, 4 … s,
        up to `transient_retries` times. No wait is longer than `max_wait` or ends past
        `timeout`, and `should_stop` is heard every second. The exchange log notes every
        retry and every wait shortened. `on_partial` hears the partial manifest a 202
        carries as `application/json` (v4 `allowPartialManifests`, v4 digest §1.8)."""
        deadline = time.monotonic() + timeout
        delay, transients = 1.0, 0
        while time.monotonic() < deadline:
            if should_stop():
                raise ExportStopped
            seen: list[Exchange] = []
            headers = {**self._auth(), "Accept": "application/json"}
            result = self._http("GET", status_url, headers, hook=seen.append)
            if result.status == 200:
                self._log(seen)
                return _manifest_json(result)
            pause = self._after_poll(result, delay, transients)
            if pause is None:
                self._log(seen)
                retries = "retry" if transients == 1 else "retries"
                still = f" (still, after {transients} {retries})" if transients else ""
                raise BulkClientError(f"export failed: {describe_error(result)}{still}")
            transients += result.status >= 500
            pause = pause.bounded(self.max_wait, deadline - time.monotonic())
            self._log(seen, pause.note)
            if result.status == 202:
                on_progress(result.headers.get("X-Progress", ""))
                if on_partial is not None and _is_json(result) and result.body.strip():
                    on_partial(_manifest_json(result))
            delay = pause.seconds
            _sleep_unless(delay, should_stop)
        raise BulkClientError(f"export did not finish within {timeout:.0f}s")

    def _after_poll(self, result: HttpResult, delay: float, transients: int) -> Pause | None:
        """The wait after a poll answered in progress, throttled or with a transient
        error; None when the answer ends the export."""
        asked = retry_after(result.headers.get("Retry-After", ""))
        if result.status == 202:
            return Pause(2.0 if asked is None else asked)
        if result.status == 429:
            return Pause(backoff(result, delay))
        code = transient_code(result)
        if not code or transients >= self.transient_retries:
            return None
        return Pause(
            2.0**transients if asked is None else asked,
            f"A transient error ({code}), not the end of the export: polling again, "
            f"retry {transients + 1} of {self.transient_retries}.",
        )

    def manifest_page(self, url: str) -> dict[str, Any]:
        """A page of a paged manifest (`link` next, v4 digest §1.8). Our token goes only
        to this server's own origin, as for the status URL."""
        if not same_origin(url, self.base_url):
            raise BulkClientError(
                f"the manifest's next page {redact_url(url)} is not on the FHIR server's origin"
            )
        result = self._http("GET", url, {**self._auth(), "Accept": "application/json"})
        if result.status != 200:
            raise BulkClientError(f"the manifest page failed: {describe_error(result)}")
        return _manifest_json(result)

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
        """Stream one manifest file as chunks, never the whole file in memory. The token
        goes only to this server's own origin, and only when the manifest says files
        need it: never to presigned object-store URLs on another host. Redirects are
        followed (a file endpoint may send us on to a presigned URL): every hop passes
        the address guard again, and the Authorization header is dropped when a hop
        leaves the origin."""
        headers = {"Accept": "application/fhir+ndjson"}
        if manifest.get("requiresAccessToken") and same_origin(url, self.base_url):
            headers.update(self._auth())
        started = time.monotonic()
        try:
            with outbound.stream(
                "GET",
                url,
                headers=headers,
                timeout=DOWNLOAD_IDLE_TIMEOUT,
                deadline_seconds=None,  # as long as the file takes; the caller can stop
                follow_redirects=True,
                verify_tls=self.verify_tls,
                allow_private=self.allow_private,
            ) as answer:
                _record_exchange(
                    self.on_exchange, "GET", url, answer.status, headers, answer.headers, started
                )
                if answer.status != 200:
                    said = HttpResult(answer.status, answer.headers, _head(answer.chunks))
                    raise BulkClientError(
                        f"download of {redact_url(url)} failed: {describe_error(said)}"
                    )
                yield answer.chunks
        except FetchError as error:
            raise BulkClientError(f"download of {redact_url(url)} failed: {error}") from None


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


def parameters_v4(params: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Kick-off parameters as the 4.0.0 ballot's Parameters body: one value per
    parameter (`_type=A,B` becomes two, v4 digest B2), `allowPartialManifests` a
    boolean, `_until` an instant."""
    pairs = [
        (name, one)
        for name, text in params
        for one in (text.split(",") if name in ("_type", "_elements") else [text])
        if one.strip()
    ]
    body = parameters_resource(pairs)
    for parameter in body["parameter"]:
        if parameter["name"] == "allowPartialManifests":
            parameter["valueBoolean"] = parameter.pop("valueString") == "true"
        elif parameter["name"] == "_until":
            parameter["valueInstant"] = parameter.pop("valueString")
    return body


def backoff(result: HttpResult, delay: float) -> float:
    """How long to wait after a 429: what Retry-After asks, else twice the previous wait
    (at most a minute)."""
    asked = retry_after(result.headers.get("Retry-After", ""))
    return asked if asked is not None else min(60.0, delay * 2)


def retry_after(value: str) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3), at least
    MIN_WAIT so that "0" or a date gone by does not make a tight loop; None when absent
    or unreadable. An absurd value stays absurd here: callers bound it (Pause.bounded)."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return max(MIN_WAIT, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return max(MIN_WAIT, when.timestamp() - time.time())


def _is_json(result: HttpResult) -> bool:
    """A partial manifest is `application/json` (v4 digest §1.8); a 202 may also carry
    an OperationOutcome (`application/fhir+json`), which is no manifest."""
    return result.headers.get("Content-Type", "").split(";")[0].strip() == "application/json"


def _manifest_json(result: HttpResult) -> dict[str, Any]:
    try:
        return result.json()
    except ValueError:
        raise BulkClientError("the manifest is not valid JSON") from None


def _head(chunks: Iterator[bytes]) -> bytes:
    """The first ERROR_TEXT_BYTES of a streamed answer."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= ERROR_TEXT_BYTES:
            break
    return head[:ERROR_TEXT_BYTES]


def _sleep_unless(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Sleep, checking `should_stop` each second so a cancel takes effect promptly."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if should_stop():
            raise ExportStopped
        time.sleep(min(1.0, left))


def _diagnostics(path: Path) -> list[str]:
    """The issues' texts of a downloaded error file (as `describe_error` words them); a
    line that is no OperationOutcome (the server's file is untrusted input) is named
    instead."""
    texts = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                outcome = untrusted_json.loads(line)
            except ValueError:
                outcome = None
            if isinstance(outcome, dict):
                texts += _issue_texts(outcome)
            else:
                texts.append(f"line {number} of {path.name} is not an OperationOutcome")
    return texts
