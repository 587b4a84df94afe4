"""A tiny Bulk Data server on 127.0.0.1 that misbehaves on request: no
smart-configuration (token endpoint only in the CapabilityStatement), throttled
polling, a malformed manifest, files that fail or are not NDJSON. It records every
request so tests can assert what the client sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STUB_TOKEN = "stub-access-token-5f1c"  # noqa: S105 - a test credential, asserted absent


@dataclass
class StubBulkServer:
    base_url: str = ""
    # (status, headers) answers to status polls before the manifest.
    polls: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    manifest: Any = None  # None: a well-formed one pointing at /files/Patient.ndjson
    file_status: int = 200
    file_body: bytes = (
        b'{"resourceType":"Patient","id":"p1"}\n{"resourceType":"Patient","id":"p2"}\n'
    )
    error_body: bytes = b""
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    token_forms: list[str] = field(default_factory=list)  # bodies of token requests

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


class _Handler(BaseHTTPRequestHandler):
    stub: StubBulkServer

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(
            status,
            json.dumps(body).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    def _record(self) -> None:
        self.stub.requests.append((self.command, self.path, dict(self.headers.items())))

    def do_POST(self):  # noqa: N802 - http.server's naming
        self._record()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        if self.path == "/token":
            self.stub.token_forms.append(body)
            self._json(200, {"access_token": STUB_TOKEN, "token_type": "bearer", "expires_in": 300})
        else:
            self._send(404)

    def do_DELETE(self):  # noqa: N802
        self._record()
        self._send(202 if self.path == "/status" else 404)

    def do_GET(self):  # noqa: N802
        self._record()
        stub, path = self.stub, self.path.split("?")[0]
        if path == "/metadata":
            self._json(200, capability_statement(f"{stub.base_url}/token"))
        elif path == "/$export":
            self._send(202, headers={"Content-Location": f"{stub.base_url}/status"})
        elif path == "/status" and stub.polls:
            status, headers = stub.polls.pop(0)
            self._send(status, headers=headers)
        elif path == "/status":
            manifest = stub.default_manifest() if stub.manifest is None else stub.manifest
            body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
            self._send(200, body, {"Content-Type": "application/json"})
        elif path == "/files/Patient.ndjson":
            self._send(stub.file_status, stub.file_body if stub.file_status == 200 else b"")
        elif path == "/files/errors.ndjson":
            self._send(200, stub.error_body)
        else:  # no .well-known/smart-configuration
            self._send(404)

    def log_message(self, *args: Any) -> None:
        pass


def capability_statement(token_url: str) -> dict[str, Any]:
    oauth = {
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension": [{"url": "token", "valueUri": token_url}],
    }
    return {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "security": {"extension": [oauth]}}],
    }


def serve_stub() -> Iterator[StubBulkServer]:
    stub = StubBulkServer()
    handler = type("StubHandler", (_Handler,), {"stub": stub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    stub.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
