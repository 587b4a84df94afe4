"""A loopback Data Provider (manifests and NDJSON files on 127.0.0.1, some missing or
slow), and a backend client registered to send `$bulk-submit` to bulkops."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from submissions.models import Submission
from tests.accounts.conftest import console_client  # noqa: F401
from tests.console.conftest import fast_password_hashing  # noqa: F401
from tests.exports.conftest import FhirClient, jwk_a, jwk_b, make_fhir_client  # noqa: F401

SUBMIT_SCOPE = "system/bulk-submit"


@dataclass
class Provider:
    """Serves `files[path]` bytes; `delays[path]` seconds before answering; any other
    path is a 404. `requests` records (path, headers) of what bulkops fetched."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def manifest(
        self, path: str, outputs: list[tuple[str, str]], counts: dict[str, Any] | None = None
    ) -> str:
        """Publish a manifest listing (type, file path) outputs, with the `count` of each
        file `counts` names; its absolute URL."""
        counts = counts or {}
        body = {
            "transactionTime": "2025-01-01T00:00:00Z",
            "requiresAccessToken": False,
            "output": [
                {"type": kind, "url": f"{self.url}{file}"}
                | ({"count": counts[file]} if file in counts else {})
                for kind, file in outputs
            ],
            "error": [],
        }
        self.files[path] = json.dumps(body).encode()
        return f"{self.url}{path}"

    def ndjson(self, path: str, resources: list[dict[str, Any]]) -> None:
        self.files[path] = b"".join(json.dumps(r).encode() + b"\n" for r in resources)


@pytest.fixture
def provider(settings) -> Iterator[Provider]:
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True  # the provider listens on 127.0.0.1
    state = Provider(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            state.requests.append((self.path, dict(self.headers)))
            time.sleep(state.delays.get(self.path, 0))
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def submitter(make_fhir_client, jwk_a) -> FhirClient:  # noqa: F811
    return make_fhir_client(jwk_a, name="provider", scopes=SUBMIT_SCOPE)


def submit_parameters(
    client: FhirClient, submission_id: str, *, status: str = "", manifest_url: str = "",
    replaces: str = "", headers: tuple[tuple[str, str], ...] = (),
) -> list[dict[str, Any]]:  # fmt: skip
    parameters: list[dict[str, Any]] = [
        {"name": "submitter", "valueIdentifier": {"value": client.backend_client.client_id}},
        {"name": "submissionId", "valueString": submission_id},
    ]
    if status:
        parameters.append({"name": "submissionStatus", "valueCoding": {"code": status}})
    if manifest_url:
        parameters += [
            {"name": "manifestUrl", "valueUrl": manifest_url},
            {"name": "fhirBaseUrl", "valueUrl": manifest_url.rsplit("/", 1)[0]},
        ]
    if replaces:
        parameters.append({"name": "replacesManifestUrl", "valueUrl": replaces})
    parameters += [
        {"name": "fileRequestHeader", "part": [
            {"name": "headerName", "valueString": name},
            {"name": "headerValue", "valueString": value},
        ]}
        for name, value in headers
    ]  # fmt: skip
    return parameters


def post_operation(client: FhirClient, path: str, parameters: list[dict[str, Any]], **kwargs):
    body = {"resourceType": "Parameters", "parameter": parameters}
    return client.request(
        "post",
        path,
        scope=kwargs.pop("scope", SUBMIT_SCOPE),
        data=json.dumps(body),
        content_type="application/fhir+json",
        headers={"Accept": "application/fhir+json", "Prefer": "respond-async"},
        **kwargs,
    )


def submit(client: FhirClient, submission_id: str, *, scope: str = SUBMIT_SCOPE, **kwargs: Any):
    parameters = submit_parameters(client, submission_id, **kwargs)
    return post_operation(client, "/fhir/$bulk-submit", parameters, scope=scope)


def final_status(client: FhirClient, submission_id: str, timeout: float = 60) -> dict[str, Any]:
    """Kick off $bulk-submit-status and poll its URL until the final manifest (200)."""
    parameters = submit_parameters(client, submission_id)
    kickoff = post_operation(client, "/fhir/$bulk-submit-status", parameters)
    assert kickoff.status_code == 202, kickoff.content
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.request("get", kickoff["Content-Location"], scope=SUBMIT_SCOPE)
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 202, response.content
        time.sleep(0.1)
    raise AssertionError(f"submission {submission_id} not finished after {timeout}s")


def outcomes(client: FhirClient, manifest: dict[str, Any]) -> dict[str, str]:
    """Each outcome file's diagnostics, by the manifest URL it reports on plus its url."""
    found = {}
    for item in manifest["outcome"]:
        response = client.request("get", item["url"], scope=SUBMIT_SCOPE)
        assert response.status_code == 200
        (line,) = response.content.decode().splitlines()
        found[item["url"]] = json.loads(line)["issue"][0]["diagnostics"]
    return found


def submission(submission_id: str) -> Submission:
    return Submission.objects.get(submission_id=submission_id)
