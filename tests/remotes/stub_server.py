"""Stub Bulk Data servers on 127.0.0.1 that misbehave in ways the tests choose: one
request plumbing (`serve`, which records every request so tests can assert what the
client sent) and four behaviours, `FaultyExportServer` for remote exports,
`ReferenceLikeServer` (conforming, with the habits of the SMART reference server) for
remote exports and the check battery alike, `NonConformingServer` for the check battery
and `TokenCollector`, an attacker's server naming another origin's token endpoint.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs

import jwt

STUB_TOKEN = "stub-access-token-5f1c"  # noqa: S105 - a test credential, asserted absent
TOKEN_RESPONSE = {"access_token": STUB_TOKEN, "token_type": "bearer", "expires_in": 300}
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/fhir+ndjson"}
NO_STORE = {"Cache-Control": "no-store"}
WWW_BEARER = {"WWW-Authenticate": 'Bearer realm="fhir"'}

Reply = tuple[int, bytes, dict[str, str]]  # status, body, headers


@dataclass
class StubServer:
    """What both behaviours share: where they listen and what they were asked."""

    origin: str = ""  # http://127.0.0.1:<port>, set by `serve`
    # (method, path with query, headers) of every request, in order.
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.origin

    @property
    def authorizations(self) -> list[str]:
        """The Authorization header of every request that carried one, in order."""
        return [
            value
            for _, _, headers in self.requests
            for name, value in headers.items()
            if name.lower() == "authorization"
        ]

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        raise NotImplementedError

    def answer_request(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> Reply:
        """The reply to one request; `headers` (the request's) are for stubs that judge
        them, and their names compare case-insensitively."""
        return self.answer(method, path, body)


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, json.dumps(body).encode(), {**JSON, **(headers or {})}


@dataclass
class FaultyExportServer(StubServer):
    """A server remote exports run against: right by default, with the faults a test
    switches on: no smart-configuration (the token endpoint only in the
    CapabilityStatement), throttled polling, a malformed manifest, files that fail or
    are not NDJSON, header names all in lowercase (as HTTP/2 servers and some proxies
    send them), the file sent on elsewhere by a redirect (as to a presigned URL)."""

    # (status, headers) or (status, headers, body) answers to status polls before the
    # manifest.
    polls: list[tuple[Any, ...]] = field(default_factory=list)
    manifest: Any = None  # None: a well-formed one pointing at /files/Patient.ndjson
    file_status: int = 200
    file_body: bytes = (
        b'{"resourceType":"Patient","id":"p1"}\n{"resourceType":"Patient","id":"p2"}\n'
    )
    error_body: bytes = b""
    token_forms: list[str] = field(default_factory=list)  # bodies of token requests
    status_url: str = ""  # the kick-off's Content-Location; "": its own /status
    lowercase_headers: bool = False
    file_redirect: str = ""  # where the output file is redirected to, when set

    def default_manifest(self) -> dict[str, Any]:
        manifest = {
            "transactionTime": "2026-01-01T00:00:00Z",
            "request": f"{self.base_url}/$export",
            "requiresAccessToken": True,
            "output": [{"type": "Patient", "url": f"{self.base_url}/files/Patient.ndjson"}],
            "error": [],
        }
        if self.error_body:
            manifest["error"] = [
                {"type": "OperationOutcome", "url": f"{self.base_url}/files/errors.ndjson"}
            ]
        return manifest

    def answer_request(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> Reply:
        status, data, sent = self._reply(method, path, body, headers)
        if self.lowercase_headers:
            sent = {name.lower(): value for name, value in sent.items()}
        return status, data, sent

    def _reply(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        if method == "POST" and path == "/token":
            self.token_forms.append(body.decode())
            return json_reply(200, TOKEN_RESPONSE)
        if method == "DELETE" and path == "/status":
            return 202, b"", {}
        if method != "GET":
            return 404, b"", {}
        if path == "/metadata":
            return json_reply(200, capability_statement(f"{self.base_url}/token"))
        if path == "/$export":
            return 202, b"", {"Content-Location": self.status_url or f"{self.base_url}/status"}
        if path == "/status" and self.polls:
            status, sent, *data = self.polls.pop(0)
            return status, data[0] if data else b"", sent
        if path == "/status":
            manifest = self.default_manifest() if self.manifest is None else self.manifest
            data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
            return 200, data, JSON
        if path == "/files/Patient.ndjson" and self.file_redirect:
            return 302, b"", {"Location": self.file_redirect}
        if path == "/files/Patient.ndjson":
            return self.file_status, self.file_body, {}
        if path == "/files/errors.ndjson":
            return 200, self.error_body, {}
        return 404, b"", {}  # no .well-known/smart-configuration


def capability_statement(token_url: str) -> dict[str, Any]:
    oauth = {
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension": [{"url": "token", "valueUri": token_url}],
    }
    return {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "security": {"extension": [oauth]}}],
    }


BULK_IG = "http://hl7.org/fhir/uv/bulkdata"
# Shaped as the SMART reference server's client ids are: a signed token of several
# hundred characters, here 600.
LONG_CLIENT_ID = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "eyJqd2tzX3VybCI6" * 34 + "." + "s" * 18


def outcome(code: str, diagnostics: str) -> dict[str, Any]:
    issue = {"severity": "error", "code": code, "diagnostics": diagnostics}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


@dataclass
class ReferenceLikeServer(FaultyExportServer):
    """A Bulk Data server that passes the whole check battery, with the habits of the
    SMART reference bulk-data-server that bulkops met, each switched on by a test: a
    client_id of several hundred characters (`client_id`, checked in every assertion),
    an epoch time as Retry-After on in-progress polls (`retry_after`), polls failing
    with a transient OperationOutcome (`transient_polls`), export operations defined by
    a versioned canonical and by its own OperationDefinitions (`own_definitions`), counts
    on output[] and error[] items (`error_count` to get the latter wrong), and, from
    FaultyExportServer, header names in lowercase. Every export answers one 202, then
    `transient_polls` 500s, then the manifest."""

    client_id: str = "bulkops"
    retry_after: str = "1"
    transient_polls: int = 0
    own_definitions: bool = False
    own_definition_base: str = f"{BULK_IG}/OperationDefinition/patient-export"
    error_body: bytes = json.dumps(outcome("not-found", "Group member gone")).encode() + b"\n"
    error_count: int | None = None  # None: the error file's lines
    jtis: set[str] = field(default_factory=set)
    job_deleted: bool = False

    def _reply(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        if method == "POST" and path == "/token":
            self.token_forms.append(body.decode())
            return self._token(parse_qs(body.decode()))
        if path == "/.well-known/smart-configuration":
            return json_reply(200, smart_configuration(f"{self.base_url}/token"))
        if path == "/metadata":
            return json_reply(200, self._capability_statement())
        if path.startswith("/OperationDefinition/"):
            return json_reply(200, self._operation_definition(path))
        if headers.get("Authorization") != f"Bearer {STUB_TOKEN}":
            return json_reply(401, outcome("login", "a bearer token is needed"), WWW_BEARER)
        if path.endswith("/$export"):
            return self._kick_off(headers)
        if path == "/status":
            return self._status(method, path, body, headers)
        status, data, sent = super()._reply(method, path, body, headers)
        return status, data, {**NDJSON, **sent} if status == 200 else sent

    def _token(self, form: dict[str, list[str]]) -> Reply:
        """Checks what bulkops' own token endpoint checks, but the signature."""
        claims = jwt.decode(form["client_assertion"][0], options={"verify_signature": False})
        if not (
            claims.get("iss") == claims.get("sub") == self.client_id
            and claims.get("aud") == f"{self.base_url}/token"
            and claims.get("exp", 0) > time.time()
            and claims.get("jti") not in self.jtis
        ):
            return json_reply(401, {"error": "invalid_client"}, NO_STORE)
        self.jtis.add(claims["jti"])
        return json_reply(200, {**TOKEN_RESPONSE, "scope": form["scope"][0]}, NO_STORE)

    def _kick_off(self, headers: Mapping[str, str]) -> Reply:
        if headers.get("Prefer") != "respond-async":
            return json_reply(400, outcome("invalid", "Prefer: respond-async is required"))
        if headers.get("Accept") != "application/fhir+json":
            return json_reply(400, outcome("invalid", "Accept: application/fhir+json only"))
        in_progress = {"X-Progress": "50% complete", "Retry-After": self.retry_after}
        transient = json.dumps(outcome("transient", "database busy, try again")).encode()
        self.polls = [(202, in_progress), *[(500, JSON, transient)] * self.transient_polls]
        self.job_deleted = False
        return 202, b"", {"Content-Location": f"{self.base_url}/status"}

    def _status(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        if self.job_deleted:
            return json_reply(404, outcome("not-found", "no such job"))
        if method == "DELETE":
            self.job_deleted = True
        status, data, sent = super()._reply(method, path, body, headers)
        if method == "GET" and status == 200:
            sent = {**sent, "Expires": formatdate(time.time() + 3600, usegmt=True)}
        return status, data, sent

    def default_manifest(self) -> dict[str, Any]:
        manifest = super().default_manifest()
        manifest["output"][0]["count"] = len(self.file_body.splitlines())
        lines = len(self.error_body.splitlines())
        for item in manifest["error"]:
            item["count"] = lines if self.error_count is None else self.error_count
        return manifest

    def _capability_statement(self) -> dict[str, Any]:
        definitions = {
            "system": f"{BULK_IG}/OperationDefinition/export",
            "Patient": f"{BULK_IG}/OperationDefinition/patient-export",
            "Group": f"{BULK_IG}/OperationDefinition/group-export",
        }
        if self.own_definitions:  # as the reference server's: versioned, absolute, relative
            definitions = {
                "system": f"{BULK_IG}/OperationDefinition/export|2.0.0",
                "Patient": f"{self.base_url}/OperationDefinition/PatientExport",
                "Group": "OperationDefinition/GroupExport",
            }
        statement = capability_statement(f"{self.base_url}/token")
        rest = statement["rest"][0]
        rest["operation"] = [{"name": "export", "definition": definitions["system"]}]
        rest["resource"] = [
            {"type": level, "operation": [{"name": "export", "definition": definitions[level]}]}
            for level in ("Patient", "Group")
        ]
        return {**statement, "instantiates": [f"{BULK_IG}/CapabilityStatement/bulk-data"]}

    def _operation_definition(self, path: str) -> dict[str, Any]:
        name = path.rsplit("/", 1)[-1]
        base = (
            self.own_definition_base
            if name == "PatientExport"
            else f"{BULK_IG}/OperationDefinition/group-export"
        )
        return {
            "resourceType": "OperationDefinition",
            "url": f"{self.base_url}{path}",
            "base": base,
            "code": "export",
        }


def smart_configuration(token_url: str) -> dict[str, Any]:
    return {
        "token_endpoint": token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "capabilities": ["client-confidential-asymmetric"],
        "scopes_supported": ["system/*.read"],
        "code_challenge_methods_supported": ["S256"],
    }


@dataclass
class NonConformingServer(StubServer):
    """A server the check battery must find fault with. It gets just enough right for
    every check to run, and wrong what the tests name: it accepts any assertion (wrong
    audience, expired, replayed), lacks private_key_jwt and the IG in its
    CapabilityStatement, accepts kick-offs without Prefer or a token, polls without
    Retry-After, sends a manifest without transactionTime or error[], a Patient file of
    Observations with a wrong count, serves that file without a token although
    requiresAccessToken is true, and has no DELETE. With `content_location=False` its
    kick-off gives no status URL; with `presigned=True` its manifest says
    requiresAccessToken false and lists file URLs on another host name (localhost),
    like presigned URLs; with `nested_manifest=True` its manifest is 5,000 nested arrays."""

    content_location: bool = True
    presigned: bool = False
    nested_manifest: bool = False
    status_polls: int = 0

    @property
    def base_url(self) -> str:
        return f"{self.origin}/fhir"

    @property
    def file_authorizations(self) -> list[str | None]:
        """The Authorization header of each download of the output file (None: none)."""
        return [
            headers.get("Authorization")
            for method, path, headers in self.requests
            if (method, path) == ("GET", "/fhir/files/1.ndjson")
        ]

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        if method == "POST":
            return json_reply(200, {**TOKEN_RESPONSE, "scope": "system/*.read"}, NO_STORE)
        if method == "DELETE":
            return json_reply(405, {"resourceType": "OperationOutcome"})
        base = self.base_url
        if path == "/fhir/.well-known/smart-configuration":
            return json_reply(200, {
                "token_endpoint": base.replace("/fhir", "/token"),
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
                "capabilities": ["client-confidential-asymmetric"],
                "scopes_supported": ["system/*.read"],
                "code_challenge_methods_supported": ["S256"],
            })  # fmt: skip
        if path == "/fhir/metadata":
            return json_reply(
                200, {"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]}
            )
        if path.endswith("/$export"):
            status_url = {"Content-Location": f"{base}/status/1"} if self.content_location else {}
            return 202, b"", {**JSON, **status_url}
        if path == "/fhir/status/1":
            self.status_polls += 1
            if self.status_polls == 1:
                return 202, b"", JSON
            if self.nested_manifest:
                return 200, b"[" * 5000, JSON
            files = base.replace("127.0.0.1", "localhost") if self.presigned else base
            return json_reply(200, {
                "request": f"{base}/Patient/$export?_type=Patient",
                "requiresAccessToken": not self.presigned,
                "output": [{"type": "Patient", "url": f"{files}/files/1.ndjson", "count": 3}],
            })  # fmt: skip
        if path == "/fhir/files/1.ndjson":
            lines = [json.dumps({"resourceType": "Observation", "id": str(n)}) for n in (1, 2)]
            return 200, "".join(f"{line}\n" for line in lines).encode(), NDJSON
        return json_reply(404, {"resourceType": "OperationOutcome"})


@dataclass
class TokenCollector(StubServer):
    """An attacker's FHIR server: its smart-configuration names `token_endpoint`, a real
    server's on another origin, hoping we fetch a token there and bring it along; it
    accepts every kick-off. Tests assert that no Authorization header ever reached it."""

    token_endpoint: str = ""

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        if path == "/.well-known/smart-configuration":
            return json_reply(200, {
                "token_endpoint": self.token_endpoint,
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
                "capabilities": ["client-confidential-asymmetric"],
                "scopes_supported": ["system/*.read"],
            })  # fmt: skip
        if path.endswith("/$export"):
            return 202, b"", {"Content-Location": f"{self.base_url}/status"}
        return json_reply(404, {"resourceType": "OperationOutcome"})


Stub = TypeVar("Stub", bound=StubServer)


class _Headers(Mapping[str, str]):
    """A request's headers, looked up by name in any case."""

    def __init__(self, message: Message) -> None:
        self._message = message

    def __getitem__(self, name: str) -> str:
        value = self._message.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._message.keys())

    def __len__(self) -> int:
        return len(self._message)


class _Handler(BaseHTTPRequestHandler):
    stub: StubServer

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.stub.requests.append((self.command, self.path, dict(self.headers.items())))
        status, data, headers = self.stub.answer_request(
            self.command, self.path.split("?")[0], body, _Headers(self.headers)
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer  # noqa: N815 - http.server's naming

    def log_message(self, *args: Any) -> None:  # quiet test output
        pass


@contextmanager
def serve(stub: Stub) -> Iterator[Stub]:
    """Run `stub` on a free port of 127.0.0.1 until the block ends."""
    handler = type("StubHandler", (_Handler,), {"stub": stub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    stub.origin = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
