"""A deliberately broken Bulk Data server on 127.0.0.1 for the check battery's tests.

It gets just enough right for every check to run, and wrong what the tests name: it
accepts any assertion (wrong audience, expired, replayed), lacks private_key_jwt and the
IG in its CapabilityStatement, accepts kick-offs without Prefer or a token, polls without
Retry-After, sends a manifest without transactionTime or error[], a Patient file of
Observations with a wrong count, serves that file without a token although
requiresAccessToken is true, and has no DELETE. With `content_location=False` its
kick-off gives no status URL; with `presigned=True` its manifest says requiresAccessToken
false and lists file URLs on another host name (localhost), like presigned URLs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "stub-access-token-never-in-evidence"  # noqa: S105 - a value the tests look for


class BrokenRemote(ThreadingHTTPServer):
    content_location = True
    presigned = False
    polls = 0
    file_authorizations: list[str | None]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/fhir"


class Handler(BaseHTTPRequestHandler):
    server: BrokenRemote

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def _send(self, status: int, body: object = None, content_type: str = "application/json",
              **headers: str) -> None:  # fmt: skip
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        base = self.server.base_url
        path = self.path.split("?")[0]
        if path == "/fhir/.well-known/smart-configuration":
            self._send(200, {
                "token_endpoint": base.replace("/fhir", "/token"),
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
                "capabilities": ["client-confidential-asymmetric"],
                "scopes_supported": ["system/*.read"],
                "code_challenge_methods_supported": ["S256"],
            })  # fmt: skip
        elif path == "/fhir/metadata":
            self._send(200, {"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]})
        elif path.endswith("/$export"):
            headers = (
                {"Content_Location": f"{base}/status/1"} if self.server.content_location else {}
            )
            self._send(202, **headers)
        elif path == "/fhir/status/1":
            self.server.polls += 1
            if self.server.polls == 1:
                self._send(202)
            else:
                files = base.replace("127.0.0.1", "localhost") if self.server.presigned else base
                self._send(200, {
                    "request": f"{base}/Patient/$export?_type=Patient",
                    "requiresAccessToken": not self.server.presigned,
                    "output": [{"type": "Patient", "url": f"{files}/files/1.ndjson", "count": 3}],
                })  # fmt: skip
        elif path == "/fhir/files/1.ndjson":
            self.server.file_authorizations.append(self.headers.get("Authorization"))
            lines = [json.dumps({"resourceType": "Observation", "id": str(n)}) for n in (1, 2)]
            self._send(200, ("\n".join(lines) + "\n").encode(), "application/fhir+ndjson")
        else:
            self._send(404, {"resourceType": "OperationOutcome"})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(200, {"access_token": TOKEN, "token_type": "bearer", "expires_in": 300,
                         "scope": "system/*.read"}, Cache_Control="no-store")  # fmt: skip

    def do_DELETE(self) -> None:  # noqa: N802
        self._send(405, {"resourceType": "OperationOutcome"})


@contextmanager
def broken_remote(
    *, content_location: bool = True, presigned: bool = False
) -> Iterator[BrokenRemote]:
    server = BrokenRemote(("127.0.0.1", 0), Handler)
    server.content_location, server.presigned = content_location, presigned
    server.file_authorizations = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
