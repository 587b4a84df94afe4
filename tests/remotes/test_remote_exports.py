"""Remote exports end to end: our console launches, a real Celery worker runs the
client flow against a second bulkops (real processes, real keys), files land in our
storage and are previewable like a local job's."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from exports.models import ExportJob
from exports.storage import get_storage
from remotes.models import RemoteDownload, RemoteExport
from tests.exports.conftest import wait_for_job
from tests.remotes.remote_server import GROUP_ID, PATIENTS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

TYPES = "Patient,Condition"


def ndjson_ids(browser: Client, file_uuid) -> set[str]:
    body = b"".join(browser.get(f"/files/{file_uuid}/download/").streaming_content)
    return {json.loads(line)["id"] for line in body.splitlines() if line.strip()}


def export_patients_of_the_group(server) -> ExportJob:
    """Run a remote export of the group's Patients in this process, as remote_export does;
    the job, completed."""
    from remotes.runner import run_remote_export
    from remotes.services import start_remote_export

    job = start_remote_export(
        server, level="group", group_id=GROUP_ID, pairs=[("_type", "Patient")],
        actor="t", request=None, queue=False,
    )  # fmt: skip
    run_remote_export(job.pk)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    return job


def test_console_export_from_a_remote_equals_the_remote_store(
    console_client, remote, remote_server
):
    operator = console_client("operator")
    response = operator.post(
        f"/remotes/{remote_server.name}/export/",
        {"level": "group", "group_id": GROUP_ID, "types": TYPES,
         "output_format": "application/fhir+ndjson"},
    )  # fmt: skip
    assert response.status_code == 302, response.content
    job = wait_for_job(response["Location"].split("/")[-2], timeout=90)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    assert job.client is None and job.expires_at is not None

    remote_ids = remote.resource_ids()
    files = list(job.files.filter(kind="output"))
    exported: dict[str, set[str]] = {}
    for file in files:
        exported.setdefault(file.resource_type, set()).update(ndjson_ids(operator, file.uuid))
        preview = operator.get(f"/files/{file.uuid}/")
        assert preview.status_code == 200
    assert len(exported["Patient"]) == PATIENTS
    # The group holds every generated patient, so the compartment is the whole store.
    assert exported == {t: remote_ids[t] for t in TYPES.split(",")}

    downloads = RemoteDownload.objects.filter(export__job=job)
    for download in downloads:
        assert download.status == "done" and len(download.sha256) == 64
        assert download.lines == download.file.resource_count
    export = RemoteExport.objects.get(job=job)
    assert export.remote_job_deleted is True
    assert set(export.timings) == {"token", "kickoff", "waiting", "download", "delete"}
    methods = [e.method for e in export.exchanges.all()]
    assert methods[-1] == "DELETE" and methods.count("POST") == 1  # one token, reused

    page = operator.get(f"/exports/{job.uuid}/").content.decode()
    assert "Manifest as received" in page and export.status_url in page
    assert "HTTP exchanges" in page and "Run again" not in page


def test_s3_remote_hands_out_presigned_urls_and_gets_no_token_on_them(
    tmp_path, s3_server, remote_key, monkeypatch
):
    from bulkops.signing_keys import public_jwks
    from tests.remotes.conftest import make_server
    from tests.remotes.remote_server import remote_bulkops

    bucket = "remote-presigned"
    s3_server.client().create_bucket(Bucket=bucket)
    settings = {
        "BULKOPS_STORAGE": "s3", "BULKOPS_S3_BUCKET": bucket,
        "BULKOPS_S3_ENDPOINT_URL": s3_server.endpoint, "BULKOPS_S3_REGION": "us-east-1",
        "BULKOPS_S3_ADDRESSING_STYLE": "path",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    }  # fmt: skip
    with remote_bulkops(tmp_path / "var", **settings) as remote:
        server = make_server(
            "s3lab", remote.base_url, remote.register(public_jwks(remote_key)), remote_key
        )
        job = export_patients_of_the_group(server)
    export = RemoteExport.objects.get(job=job)
    assert export.manifest["requiresAccessToken"] is False
    file_gets = [e for e in export.exchanges.all() if s3_server.endpoint in e.url]
    assert file_gets, [e.url for e in export.exchanges.all()]
    for exchange in file_gets:
        assert exchange.status == 200
        assert "Authorization" not in exchange.request_headers
        assert "X-Amz-Signature=REDACTED" in exchange.url
    assert job.files.get(kind="output").resource_count == PATIENTS


def test_patient_parameter_goes_in_a_posted_parameters_body(remote, remote_server):
    from remotes.runner import run_remote_export
    from remotes.services import start_remote_export

    chosen = sorted(remote.resource_ids()["Patient"])[0]
    job = start_remote_export(
        remote_server, level="group", group_id=GROUP_ID,
        pairs=[("_type", "Patient"), ("patient", f"Patient/{chosen}")],
        actor="t", request=None, queue=False,
    )  # fmt: skip
    run_remote_export(job.pk)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    kickoff = RemoteExport.objects.get(job=job).exchanges.get(url__contains="$export")
    assert kickoff.method == "POST" and kickoff.status == 202
    stored = get_storage().open_reader(job.files.get(kind="output").storage_key).read()
    assert [json.loads(line)["id"] for line in stored.splitlines()] == [chosen]


def test_kick_off_refused_for_too_many_exports_waits_retry_after_and_goes_on(tmp_path, remote_key):
    """A remote bulkops that runs one export per client at a time: while our first one
    is unfinished, the second kick-off gets 429 + Retry-After and is tried again."""
    from bulkops.signing_keys import public_jwks
    from exports.bulk_client import BulkExportClient, TokenSource
    from remotes.models import RemoteExchange
    from remotes.services import start_remote_export
    from tests.remotes.conftest import make_server
    from tests.remotes.remote_server import remote_bulkops

    limits = {"BULKOPS_MAX_CONCURRENT_EXPORTS": "1", "BULKOPS_RETRY_AFTER": "1"}
    with remote_bulkops(tmp_path / "var", start_worker=False, **limits) as remote:
        client_id = remote.register(public_jwks(remote_key))
        server = make_server("busy", remote.base_url, client_id, remote_key)
        base = remote.base_url.removesuffix("/fhir")
        tokens = TokenSource(f"{base}/auth/token", client_id, remote_key, "system/*.read")
        occupant = BulkExportClient(remote.base_url, tokens)
        first = occupant.kick_off("/$export", [])  # queued, no worker yet: holds the slot
        job = start_remote_export(
            server,
            level="group",
            group_id=GROUP_ID,
            pairs=[("_type", "Patient")],
            actor="t",
            request=None,
        )  # fmt: skip  (queued: the test's Celery worker runs it)
        # The exchange log is written at the end of each phase, so wait for the kick-off
        # phase to begin; its first attempt (milliseconds) is refused, the next waits
        # Retry-After (5 s here).
        deadline = time.monotonic() + 60
        while not RemoteExport.objects.filter(job=job, phase="kickoff").exists():
            assert time.monotonic() < deadline, ExportJob.objects.get(pk=job.pk).failure_reason
            time.sleep(0.05)
        time.sleep(2)
        assert occupant.delete(first) == 202  # frees the slot; then the worker starts
        remote.start_worker()
        job = wait_for_job(job.uuid, timeout=120)

    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    kick_offs = list(RemoteExchange.objects.filter(export__job=job, url__contains="$export"))
    assert kick_offs[0].status == 429 and kick_offs[-1].status == 202
    waited = kick_offs[1].answered_at - kick_offs[0].answered_at
    assert waited.total_seconds() >= float(kick_offs[0].response_headers["Retry-After"])
