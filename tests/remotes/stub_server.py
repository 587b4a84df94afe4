"""Stub Bulk Data servers on 127.0.0.1 that misbehave in ways the tests choose: one
request plumbing (`serve`, which records every request so tests can assert what the
client sent) and three behaviours, `FaultyExportServer` for remote exports,
`NonConformingServer` for the check battery and `TokenCollector`, an attacker's server
naming another origin's token endpoint.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

STUB_TOKEN = "stub-access-token-5f1c"  # noqa: S105 - a test credential, asserted absent
TOKEN_RESPONSE = {"access_token": STUB_TOKEN, "token_type": "bearer", "expires_in": 300}
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/fhir+ndjson"}
NO_STORE = {"Cache-Control": "no-store"}

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


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, json.dumps(body).encode(), {**JSON, **(headers or {})}


@dataclass
class FaultyExportServer(StubServer):
    """A server remote exports run against: right by default, with the faults a test
    switches on: no smart-configuration (the token endpoint only in the
    CapabilityStatement), throttled polling, a malformed manifest, files that fail or
    are not NDJSON, header names all in lowercase (as HTTP/2 servers and some proxies
    send them), the file sent on elsewhere by a redirect (as to a presigned URL)."""

    # (status, headers) answers to status polls before the manifest.
    polls: list[tuple[int, dict[str, str]]] = field(default_factory=list)
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

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        status, data, headers = self._reply(method, path, body)
        if self.lowercase_headers:
            headers = {name.lower(): value for name, value in headers.items()}
        return status, data, headers

    def _reply(self, method: str, path: str, body: bytes) -> Reply:
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
            status, headers = self.polls.pop(0)
            return status, b"", headers
        if path == "/status":
            manifest = self.default_manifest() if self.manifest is None else self.manifest
            data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
            return 200, data, JSON
        if path == "/files/Patient.ndjson" and self.file_redirect:
            return 302, b"", {"Location": self.file_redirect}
        if path == "/files/Patient.ndjson":
            return self.file_status, self.file_body if self.file_status == 200 else b"", {}
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


class _Handler(BaseHTTPRequestHandler):
    stub: StubServer

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.stub.requests.append((self.command, self.path, dict(self.headers.items())))
        status, data, headers = self.stub.answer(self.command, self.path.split("?")[0], body)
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
