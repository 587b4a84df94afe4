"""Exports in S3 mode against a real S3 HTTP endpoint (moto's server on 127.0.0.1):
presigned URLs fetched with plain HTTP and no token, multipart uploads, aborts,
cleanup, re-signing and the `check_storage` diagnosis."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import parsedate_to_datetime
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from exports.models import ExportJob
from exports.ndjson_files import RotatingNdjsonWriter
from exports.partitions import plan_export, run_partition
from exports.services import expire_exports
from exports.storage import get_storage
from fhirstore.models import Resource
from tests.conftest import free_port


def fetch(url: str) -> tuple[bytes, Message]:
    """GET as any HTTP client would, with no Authorization header."""
    request = urllib.request.Request(url)
    assert not request.has_header("Authorization")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read(), response.headers


def signed_until(url: str) -> datetime:
    query = parse_qs(urlsplit(url).query)
    signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return signed + timedelta(seconds=int(query["X-Amz-Expires"][0]))


def accepted_job(client, **data) -> ExportJob:
    response = client.kick_off(data=data)
    assert response.status_code == 202
    return ExportJob.objects.get(uuid=response["Content-Location"].rsplit("/", 1)[1])


def finished_job(client, **data) -> ExportJob:
    """Play the worker: plan and run every partition in this thread."""
    job = accepted_job(client, **data)
    for partition_id in plan_export(job.pk):
        run_partition(partition_id=partition_id, worker="test-worker")
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    return job


def stored_lines(**filters) -> dict[tuple[str, str], str]:
    return {
        (rtype, rid): body
        for rtype, rid, body in Resource.objects.filter(deleted=False, **filters).values_list(
            "resource_type", "resource_id", "body"
        )
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_s3_export_hands_out_presigned_urls_that_work_without_a_token(client_a, store, s3):
    kickoff = client_a.kick_off(
        data={"_type": "Patient,Observation,Condition,Practitioner,Banana"},
        prefer="respond-async, handling=lenient",
    )
    manifest = client_a.finished_manifest(kickoff)
    assert manifest["requiresAccessToken"] is False
    exported = {}
    for item in manifest["output"]:
        assert item["url"].startswith(f"{s3.server.endpoint}/{s3.name}/")
        assert "X-Amz-Signature=" in item["url"]
        body, headers = fetch(item["url"])
        assert headers["Content-Type"] == "application/fhir+ndjson"
        lines = body.decode().splitlines()
        assert len(lines) == item["count"]
        for line in lines:
            resource = json.loads(line)
            exported[(resource["resourceType"], resource["id"])] = line
    # The bytes in the bucket are the stored bytes, resource for resource.
    assert exported == stored_lines(
        resource_type__in=["Patient", "Observation", "Condition", "Practitioner"]
    )
    (warnings,) = manifest["error"]
    body, _ = fetch(warnings["url"])
    assert "Banana" in json.loads(body)["issue"][0]["diagnostics"]
    assert s3.open_uploads() == []


@pytest.mark.django_db
def test_the_manifest_is_resigned_on_every_status_request(client_a, store, s3):
    job = finished_job(client_a, _type="Patient")
    status_url = f"/fhir/bulkstatus/{job.uuid}"
    first = client_a.request("get", status_url)
    time.sleep(1.1)  # SigV4 signs with a one-second clock
    second = client_a.request("get", status_url)
    (url_1,), (url_2,) = ([i["url"] for i in r.json()["output"]] for r in (first, second))
    assert (
        parse_qs(urlsplit(url_1).query)["X-Amz-Signature"]
        != (parse_qs(urlsplit(url_2).query)["X-Amz-Signature"])
    )
    assert signed_until(url_2) > signed_until(url_1)
    assert fetch(url_1)[0] == fetch(url_2)[0]
    assert len(fetch(url_1)[0].splitlines()) == 3
    for response, url in ((first, url_1), (second, url_2)):
        expires = parsedate_to_datetime(response["Expires"])
        assert expires <= signed_until(url) and expires <= job.expires_at
        assert expires > timezone.now() + timedelta(minutes=59)


@pytest.mark.django_db
def test_presigned_urls_never_outlive_the_retention_period(client_a, store, s3, settings):
    settings.BULKOPS_EXPORT_RETENTION = 600
    job = finished_job(client_a, _type="Patient")
    response = client_a.request("get", f"/fhir/bulkstatus/{job.uuid}")
    (url,) = [item["url"] for item in response.json()["output"]]
    assert int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0]) <= 600
    assert parsedate_to_datetime(response["Expires"]) <= job.expires_at


@pytest.mark.django_db
def test_the_file_url_redirects_a_token_holder_to_a_presigned_url(client_a, client_b, store, s3):
    job = finished_job(client_a, _type="Patient")
    file_url = f"/fhir/bulkfiles/{job.files.get().uuid}"
    response = client_a.request("get", file_url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{s3.server.endpoint}/{s3.name}/")
    body, _ = fetch(response["Location"])
    assert {json.loads(line)["id"] for line in body.splitlines()} == {"p1", "p2", "p3"}
    assert client_b.request("get", file_url).status_code == 404


@pytest.mark.django_db
def test_files_larger_than_a_part_are_multipart_uploads(client_a, store, s3, settings):
    settings.BULKOPS_S3_PART_SIZE = 500
    settings.BULKOPS_S3_SSE = "AES256"
    settings.BULKOPS_S3_PREFIX = "exports/bulk/"
    job = finished_job(client_a, _type="Observation,Patient")
    observations = job.files.get(resource_type="Observation")
    head = s3.head(f"exports/bulk/{observations.storage_key}")
    # Parts are exactly 500 bytes, however the lines were written; the last may be smaller.
    size = sum(len(body) + 1 for body in stored_lines(resource_type="Observation").values())
    parts = -(-size // 500)
    assert parts > 1
    assert head["ETag"].strip('"').endswith(f"-{parts}")
    assert head["ContentType"] == "application/fhir+ndjson"
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == observations.size_bytes
    # A file under one part is a single PUT (no "-N" ETag), with the same headers.
    patients = s3.head(f"exports/bulk/{job.files.get(resource_type='Patient').storage_key}")
    assert "-" not in patients["ETag"]
    assert patients["ContentType"] == "application/fhir+ndjson"
    assert s3.open_uploads() == []


@pytest.mark.django_db
def test_a_retried_partition_overwrites_its_own_object(client_a, store, s3):
    job = accepted_job(client_a, _type="Patient")
    (partition_id,) = plan_export(job.pk)
    # An earlier attempt died after writing part of the file under the same key.
    with get_storage().open_writer(f"{job.uuid}/Patient.0000.000.ndjson") as handle:
        handle.write(b'{"resourceType":"Patient","id":"half')
    run_partition(partition_id=partition_id, worker="retry")
    (url,) = [
        item["url"]
        for item in client_a.request("get", f"/fhir/bulkstatus/{job.uuid}").json()["output"]
    ]
    assert {json.loads(line)["id"] for line in fetch(url)[0].splitlines()} == {"p1", "p2", "p3"}


def test_aborting_a_file_mid_upload_leaves_no_multipart_upload(s3, settings):
    """What a cancelled partition does to the file it is writing (RotatingNdjsonWriter.abort)."""
    settings.BULKOPS_S3_PART_SIZE = 256
    writer = RotatingNdjsonWriter(get_storage(), lambda n: f"job/Patient.{n:03d}.ndjson", 100)
    for _ in range(10):
        writer.write(b"x" * 99 + b"\n")
    assert len(s3.open_uploads()) == 1  # parts are already in the bucket
    writer.abort()
    assert s3.open_uploads() == []
    assert s3.keys("job/") == []


@pytest.mark.django_db
def test_a_failing_partition_aborts_its_multipart_upload(client_a, store, s3, settings):
    settings.BULKOPS_S3_PART_SIZE = 256
    # The partition's last row cannot be parsed for _elements: it fails mid-file.
    Resource.objects.filter(resource_type="Observation", resource_id="p3-o1").update(body="{broken")
    job = accepted_job(client_a, _type="Observation", _elements="status")
    (partition_id,) = plan_export(job.pk)
    with pytest.raises(json.JSONDecodeError):
        run_partition(partition_id=partition_id, worker="test-worker")
    assert s3.open_uploads() == []
    assert s3.keys(f"{job.uuid}/") == []


@pytest.mark.django_db
def test_cancelling_deletes_the_objects_written_so_far(client_a, store, s3):
    job = accepted_job(client_a, _type="Patient,Observation")
    first, second = plan_export(job.pk)
    run_partition(partition_id=first, worker="test-worker")
    assert len(s3.keys(f"{job.uuid}/")) == 1
    assert client_a.request("delete", f"/fhir/bulkstatus/{job.uuid}").status_code == 202
    assert s3.keys(f"{job.uuid}/") == []
    run_partition(partition_id=second, worker="late-worker")
    assert s3.keys(f"{job.uuid}/") == []
    assert s3.open_uploads() == []


@pytest.mark.django_db
def test_retention_removes_the_expired_jobs_objects_and_only_them(client_a, store, s3, settings):
    settings.BULKOPS_S3_PREFIX = "tenant-1"
    old = finished_job(client_a, _type="Patient,Observation")
    new = finished_job(client_a, _type="Patient")
    s3.server.client().put_object(Bucket=s3.name, Key="someone-else/file", Body=b"x")
    assert len(s3.keys(f"tenant-1/{old.uuid}/")) == 2
    assert expire_exports(now=old.expires_at) == 1
    assert s3.keys() == ["someone-else/file", f"tenant-1/{new.uuid}/Patient.0000.000.ndjson"]


def check_storage() -> tuple[str, str | None]:
    out = StringIO()
    try:
        call_command("check_storage", stdout=out)
    except CommandError as error:
        return out.getvalue(), str(error)
    return out.getvalue(), None


def test_check_storage_passes_on_a_working_bucket(s3):
    out, error = check_storage()
    assert error is None
    assert out.splitlines()[1:] == [
        "put: ok",
        "presign: ok",
        "get (presigned URL, no token): ok",
        "delete: ok",
        "storage works",
    ]
    assert s3.keys() == []


def test_check_storage_also_checks_local_storage(settings, tmp_path):
    settings.BULKOPS_STORAGE = "local"
    settings.BULKOPS_LOCAL_STORAGE_DIR = tmp_path
    out, error = check_storage()
    assert error is None
    assert out.splitlines()[1:] == ["put: ok", "read: ok", "delete: ok", "storage works"]
    assert list(tmp_path.iterdir()) == []


def test_check_storage_names_a_missing_bucket(s3, settings):
    settings.BULKOPS_S3_BUCKET = "no-such-bucket"
    _, error = check_storage()
    assert error == (
        f"put failed: missing bucket: bucket 'no-such-bucket' at {s3.server.endpoint} does "
        "not exist; create it or fix BULKOPS_S3_BUCKET"
    )


def test_check_storage_names_bad_credentials(s3, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    with s3.server.credentials_checked():
        _, error = check_storage()
    assert error is not None
    assert error.startswith("put failed: bad credentials (InvalidAccessKeyId)")


def test_check_storage_names_an_unreachable_endpoint(s3, settings):
    settings.BULKOPS_S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    _, error = check_storage()
    assert error is not None
    assert error.startswith("put failed: endpoint unreachable: no answer from http://127.0.0.1:")


@pytest.mark.django_db
def test_the_redirect_to_a_presigned_url_has_no_body_and_no_content_type(client_a, store, s3):
    job = finished_job(client_a, _type="Patient")
    response = client_a.request("get", f"/fhir/bulkfiles/{job.files.get().uuid}")
    assert (response.status_code, response.content) == (302, b"")
    assert "Content-Type" not in response
