"""Named output storages: the default one on local disk and "archive", a bucket of moto's
S3 server on 127.0.0.1, configured at once. A job's files go to the storage it was
started with, and every read, signature and deletion of them uses that storage."""

from __future__ import annotations

import json
import logging
import urllib.request
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import AuditEvent
from exports.models import ExportJob
from exports.partitions import plan_export, run_partition
from exports.services import expire_exports
from schedules.models import ExportSchedule
from tests.api.conftest import api_as  # noqa: F401 - operator API tokens
from tests.conftest import ARCHIVE_SECRET
from tests.schedules.conftest import schedule_form, wait_finished

NO_SUCH_STORAGE = "No output storage is called nowhere."


def fetch(url: str) -> bytes:
    """GET as any HTTP client would, with no Authorization header."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def run_in_this_thread(job: ExportJob) -> ExportJob:
    """Play the worker: plan and run every partition of the job here."""
    for partition_id in plan_export(job.pk):
        run_partition(partition_id=partition_id, worker="test-worker")
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    return job


def launched_to_archive(api_as, client_a) -> ExportJob:  # noqa: F811 - fixture
    operator = api_as("operator")
    response = operator.post(
        "/api/v1/exports/launch",
        {"client_id": client_a.backend_client.client_id, "level": "system", "types": ["Patient"]},
    )
    assert response.status_code == 201, response.content
    launched = response.json()
    assert launched["storage"] == "default"
    response = operator.post(
        "/api/v1/exports/launch",
        {
            "client_id": client_a.backend_client.client_id,
            "level": "system",
            "types": ["Patient"],
            "storage": "archive",
        },
    )
    assert response.status_code == 201, response.content
    return run_in_this_thread(ExportJob.objects.get(uuid=response.json()["uuid"]))


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_run_writes_to_its_storage_and_everything_follows_it(
    console_client,
    client_a,
    store,
    archive,
    celery_worker,
    api_as,  # noqa: F811 - fixture
    settings,
    caplog,
):
    caplog.set_level(logging.INFO)
    operator = console_client("operator")
    form = schedule_form(
        client=client_a.backend_client.client_id,
        storage="archive",
        incremental="",
        retention_hours="2",
    )
    assert operator.post("/schedules/new/", form).status_code == 302
    schedule = ExportSchedule.objects.get()
    assert schedule.storage == "archive"
    assert operator.post(f"/schedules/{schedule.uuid}/run/").status_code == 302
    job = wait_finished(schedule.runs.get().job)
    assert (job.status, job.storage) == ("completed", "archive")

    # Files in the bucket under the job's folder, none on the default storage.
    assert {key.split("/")[0] for key in archive.keys("")} == {str(job.uuid)}
    default_dir = Path(settings.BULKOPS_LOCAL_STORAGE_DIR)
    assert not (default_dir / str(job.uuid)).exists()

    # The client's manifest: presigned URLs of that bucket, downloadable with no token.
    manifest = client_a.request("get", f"/fhir/bulkstatus/{job.uuid}").json()
    assert manifest["requiresAccessToken"] is False
    ids = set()
    for item in manifest["output"]:
        assert item["url"].startswith(f"{archive.server.endpoint}/{archive.name}/{job.uuid}/")
        ids |= {json.loads(line)["id"] for line in fetch(item["url"]).splitlines()}
    assert ids == {"p1", "p2", "p3"}

    # The console previews the file from the bucket; pages and the API name the storage.
    file = job.files.get(kind="output")
    preview = operator.get(f"/files/{file.uuid}/")
    assert preview.status_code == 200 and "Fam-p2" in preview.content.decode()
    job_page = operator.get(reverse("console:job-detail", args=[job.uuid])).content.decode()
    assert '<dd id="job-storage"><span class="mono">archive</span></dd>' in job_page
    schedule_page = operator.get(f"/schedules/{schedule.uuid}/").content.decode()
    assert '<dd id="schedule-storage" class="mono">archive</dd>' in schedule_page
    api = api_as("auditor")
    assert api.get(f"/api/v1/exports/{job.uuid}").json()["storage"] == "archive"
    assert api.get(f"/api/v1/schedules/{schedule.uuid}").json()["storage"] == "archive"
    kickoff = AuditEvent.objects.get(action="export.kickoff", details__job=str(job.uuid))
    assert kickoff.details["storage"] == "archive"
    created = AuditEvent.objects.get(action="schedule.created")
    assert created.details["storage"] == "archive"

    # Retention deletes the run's files from that bucket, and nothing on the default
    # storage (a file there in a folder of the job's name stays).
    (default_dir / str(job.uuid)).mkdir(parents=True)
    (default_dir / str(job.uuid) / "unrelated.ndjson").write_text("{}\n")
    archive.server.client().put_object(Bucket=archive.name, Key="someone-else/file", Body=b"x")
    assert job.expires_at is not None
    assert expire_exports(now=job.expires_at + timedelta(seconds=1)) == 1
    assert archive.keys() == ["someone-else/file"]
    assert (default_dir / str(job.uuid) / "unrelated.ndjson").exists()

    # The storage's secret reached no page, API answer, audit entry or log line.
    audit = json.dumps(list(AuditEvent.objects.values_list("details", flat=True)))
    seen = [job_page, schedule_page, audit, caplog.text, json.dumps(manifest)]
    assert not [text for text in seen if ARCHIVE_SECRET in text]


@pytest.mark.django_db
def test_an_unknown_storage_is_refused_next_to_the_field_and_nothing_is_saved(
    console_client,
    client_a,
    store,
    archive,
    api_as,  # noqa: F811 - fixture
):
    operator = console_client("operator")
    page = operator.post("/schedules/new/", schedule_form(storage="nowhere"))
    assert page.status_code == 200
    assert '<div id="errors-storage" class="field-errors"><ul class="errorlist"' in (
        page.content.decode()
    )
    assert NO_SUCH_STORAGE in page.content.decode()
    launch = operator.post(
        "/exports/new/", {"level": "system", "types": "Patient", "storage": "nowhere"}
    )
    assert launch.status_code == 200 and NO_SUCH_STORAGE in launch.content.decode()

    api = api_as("operator")
    nightly = {"name": "nightly", "level": "system", "cron": "0 2 * * *", "storage": "nowhere"}
    refused = api.post("/api/v1/schedules/create", nightly)
    assert (refused.status_code, refused.json()["errors"]["storage"]) == (400, [NO_SUCH_STORAGE])
    refused = api.post(
        "/api/v1/exports/launch",
        {"client_id": client_a.backend_client.client_id, "level": "system", "storage": "x"},
    )
    assert refused.status_code == 400
    assert refused.json()["errors"]["storage"] == [
        "No output storage is called 'x'; configured: default, archive."
    ]
    assert not ExportSchedule.objects.exists()
    assert not ExportJob.objects.exists()
    assert not AuditEvent.objects.filter(action__in=["schedule.created", "export.kickoff"])


@pytest.mark.django_db
def test_a_storage_removed_from_the_settings_is_reported_not_a_500(
    console_client,
    client_a,
    store,
    archive,
    api_as,  # noqa: F811 - fixture
    settings,
    caplog,
):
    job = launched_to_archive(api_as, client_a)
    file = job.files.get(kind="output")
    operator = console_client("operator")
    schedule_form_values = schedule_form(client=client_a.backend_client.client_id)
    operator.post("/schedules/new/", {**schedule_form_values, "storage": "archive"})
    schedule = ExportSchedule.objects.get()
    settings.BULKOPS_OUTPUT_STORAGES = {}

    page = operator.get(reverse("console:job-detail", args=[job.uuid]))
    assert page.status_code == 200
    assert "not configured any more" in page.content.decode()
    for path in (f"/files/{file.uuid}/", f"/files/{file.uuid}/download/"):
        answer = operator.get(path)
        assert answer.status_code == 503
        assert (
            "the output storage 'archive', which BULKOPS_OUTPUT_STORAGES" in answer.content.decode()
        )
    preview = api_as("auditor").get(f"/api/v1/files/{file.uuid}/preview")
    assert (preview.status_code, preview.json()["code"]) == (503, "unavailable")
    for path in (f"/fhir/bulkstatus/{job.uuid}", f"/fhir/bulkfiles/{file.uuid}"):
        answer = client_a.request("get", path)
        assert answer.status_code == 503
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert "archive" not in answer.content.decode()  # storage names are the operators'

    rerun = operator.post(reverse("console:job-rerun", args=[job.uuid]), follow=True)
    assert "This job&#x27;s output storage &#x27;archive&#x27; is not configured." in (
        rerun.content.decode()
    )
    run = operator.post(f"/schedules/{schedule.uuid}/run/", follow=True)
    assert schedule.runs.get().refusal == (
        "The schedule's output storage 'archive' is not configured."
    )
    assert run.status_code == 200

    # Expiry marks the job deleted and says where its files were left.
    with caplog.at_level(logging.ERROR):
        assert expire_exports(now=job.expires_at) == 1
    job.refresh_from_db()
    assert job.deleted_at is not None
    assert archive.keys(f"{job.uuid}/")  # out of reach, not lost
    assert "export files left in an unconfigured storage" in caplog.text


def check_storage(*args: str) -> tuple[str, str | None]:
    out = StringIO()
    try:
        call_command("check_storage", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), str(error)
    return out.getvalue(), None


def test_check_storage_checks_every_configured_storage(archive, settings):
    out, error = check_storage()
    assert error is None
    lines = out.splitlines()
    default_dir = settings.BULKOPS_LOCAL_STORAGE_DIR
    assert lines == [
        f"checking local storage at {default_dir} (default)",
        "put: ok",
        "read: ok",
        "delete: ok",
        "storage works",
        f"checking {archive.name} at {archive.server.endpoint} (archive)",
        "put: ok",
        "presign: ok",
        "get (presigned URL, no token): ok",
        "delete: ok",
        "storage works",
    ]
    assert archive.keys() == []
    out, error = check_storage("--storage", "elsewhere")
    assert error == "the output storage 'elsewhere' is not configured; configured: default, archive"


def test_check_storage_names_the_storage_and_its_settings_in_a_diagnosis(
    archive, settings, monkeypatch
):
    monkeypatch.setenv("ARCHIVE_KEY_ID", "AKIAWRONGWRONGWRONG0")
    with archive.server.credentials_checked():
        out, error = check_storage()
    assert "storage works" in out  # the default storage passed
    assert error is not None
    assert error.startswith("storage 'archive': put failed: bad credentials (InvalidAccessKeyId)")
    assert error.endswith("check ARCHIVE_KEY_ID and ARCHIVE_SECRET")
