"""A cast for export tests: client_a owns jobs, client_b must never see them; a small
store of linked patients; a FHIR client that gets real tokens with signed assertions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts.services import register_client
from bulkops.signing_keys import generate_private_jwk, public_jwks
from exports.bulk_client import make_client_assertion
from exports.models import ExportFile, ExportJob
from exports.storage import get_storage
from fhirstore.groups import upsert_group
from fhirstore.writes import put_resource
from tests.accounts.conftest import console_client  # noqa: F401 - console tests of files
from tests.smart import TOKEN_URL, post_form, token_form

DATA = Path(__file__).parents[1] / "data"


class Run:
    def __init__(self, stdout: str, stderr: str, failed: bool) -> None:
        self.stdout, self.stderr, self.failed = stdout, stderr, failed


@pytest.fixture
def load_fhir() -> Callable[..., Run]:
    """Run `manage.py load_fhir` on paths; returns its output and whether it failed."""

    def run(*paths: Path | str) -> Run:
        out, err = StringIO(), StringIO()
        try:
            call_command("load_fhir", *map(str, paths), stdout=out, stderr=err)
        except CommandError as error:
            err.write(str(error))
            return Run(out.getvalue(), err.getvalue(), True)
        return Run(out.getvalue(), err.getvalue(), False)

    return run


class FhirClient:
    """A backend client speaking to the FHIR API through Django's test client."""

    def __init__(self, backend_client: Any, jwk: dict[str, Any]) -> None:
        self.backend_client = backend_client
        self.jwk = jwk
        self.http = Client()

    def token(self, scope: str = "system/*.read") -> str:
        assertion = make_client_assertion(self.backend_client.client_id, self.jwk, TOKEN_URL)
        response = post_form(token_form(assertion, scope), self.http)
        assert response.status_code == 200, response.content
        return response.json()["access_token"]

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str = "system/*.read",
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ):
        all_headers = {"Authorization": f"Bearer {self.token(scope)}", **(headers or {})}
        return getattr(self.http, method)(path, headers=all_headers, **kwargs)

    def kick_off(
        self,
        path: str = "/fhir/$export",
        *,
        scope: str = "system/*.read",
        prefer: str = "respond-async",
        **kwargs: Any,
    ):
        headers = {"Accept": "application/fhir+json", "Prefer": prefer}
        return self.request("get", path, scope=scope, headers=headers, **kwargs)

    def post_kick_off(
        self,
        path: str,
        parameters: list[dict[str, Any]],
        *,
        prefer: str = "respond-async",
        **kwargs: Any,
    ):
        body = {"resourceType": "Parameters", "parameter": parameters}
        return self.request(
            "post",
            path,
            data=json.dumps(body),
            content_type="application/fhir+json",
            headers={"Accept": "application/fhir+json", "Prefer": prefer},
            **kwargs,
        )

    def finished_manifest(self, kickoff_response, timeout: float = 60) -> dict[str, Any]:
        status_url = kickoff_response["Content-Location"]
        wait_for_job(status_url.rsplit("/", 1)[1], timeout)
        response = self.request("get", status_url)
        assert response.status_code == 200, response.content
        return response.json()

    def manifest_chain(self, page: dict[str, Any]) -> list[dict[str, Any]]:
        """Every page of a v4 manifest from `page` on, following `link` `next`."""
        pages = [page]
        while "link" in pages[-1]:
            (link,) = pages[-1]["link"]
            assert link["relation"] == "next"
            response = self.request("get", link["url"])
            assert response.status_code == 200
            pages.append(response.json())
        return pages

    def download(self, url: str) -> list[dict[str, Any]]:
        response = self.request("get", url)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/fhir+ndjson")
        return [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]

    def resources(self, manifest: dict[str, Any], kind: str = "output") -> dict[str, list]:
        """Every downloaded resource by type, checking `count` and `type` of each file."""
        found: dict[str, list] = {}
        for item in manifest[kind]:
            lines = self.download(item["url"])
            assert item["count"] == len(lines)
            assert {line["resourceType"] for line in lines} == {item["type"]}
            found.setdefault(item["type"], []).extend(lines)
        return found


def wait_for_job(job_uuid: str, timeout: float = 60) -> ExportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ExportJob.objects.get(uuid=job_uuid)
        if job.is_finished:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_uuid} still {job.status} after {timeout}s")


def stored_file(job: ExportJob) -> ExportFile:
    """A one-line Patient output file of `job`, written to storage."""
    line = b'{"resourceType":"Patient","id":"p1"}\n'
    file = ExportFile.objects.create(
        job=job,
        kind="output",
        resource_type="Patient",
        storage_key=f"{job.uuid}/Patient.ndjson",
        resource_count=1,
        size_bytes=len(line),
    )
    with get_storage().open_writer(file.storage_key) as writer:
        writer.write(line)
    return file


@pytest.fixture(scope="session")
def jwk_a() -> dict[str, Any]:
    return generate_private_jwk("ES384")


@pytest.fixture(scope="session")
def jwk_b() -> dict[str, Any]:
    return generate_private_jwk("ES384")


@pytest.fixture
def make_fhir_client(db) -> Callable[..., FhirClient]:
    def make(
        jwk: dict[str, Any],
        *,
        name: str = "client",
        scopes: str = "system/*.read",
        groups: tuple[str, ...] = (),
    ) -> FhirClient:
        backend_client = register_client(
            name=name, jwks=public_jwks(jwk), scopes=scopes, group_ids=list(groups)
        )
        return FhirClient(backend_client, jwk)

    return make


@pytest.fixture
def client_a(make_fhir_client, jwk_a) -> FhirClient:
    return make_fhir_client(jwk_a, name="client-a")


@pytest.fixture
def client_b(make_fhir_client, jwk_b) -> FhirClient:
    return make_fhir_client(jwk_b, name="client-b")


def observation(oid: str, patient: str, code: str = "8867-4") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": 72, "unit": "/min"},
        "note": [{"text": "<script>alert('x')</script>"}],
    }


@pytest.fixture
def store(db) -> dict[str, Any]:
    """Three patients with linked data, a practitioner outside every compartment, and
    Group g1 = {p1, p2}. Written an hour ago so exports' transactionTime covers them."""
    written = timezone.now() - timedelta(hours=1)
    for pid in ("p1", "p2", "p3"):
        put_resource(
            resource_type="Patient",
            resource_id=pid,
            body={
                "resourceType": "Patient",
                "id": pid,
                "gender": "female",
                "name": [{"family": f"Fam-{pid}"}],
            },
            now=written,
        )
        for n in range(2):
            put_resource(
                resource_type="Observation",
                resource_id=f"{pid}-o{n}",
                body=observation(f"{pid}-o{n}", pid),
                now=written,
            )
        put_resource(
            resource_type="Condition",
            resource_id=f"{pid}-c",
            body={
                "resourceType": "Condition",
                "id": f"{pid}-c",
                "subject": {"reference": f"Patient/{pid}"},
            },
            now=written,
        )
    put_resource(
        resource_type="Practitioner",
        resource_id="dr1",
        body={"resourceType": "Practitioner", "id": "dr1"},
        now=written,
    )
    upsert_group(group_id="g1", name="Cohort 1", patient_ids=["p1", "p2"], actor="test")
    return {"written": written}
