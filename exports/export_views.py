"""The $export surface: kick-off, status, delete and file download (spec §1–4)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.http import http_date
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.bearer import require_bearer
from accounts.models import AuditEvent
from bulkops import untrusted_json
from bulkops.fhir.outcome import (
    INFORMATIONAL,
    NOT_FOUND,
    FhirError,
    Issue,
    operation_outcome,
)
from bulkops.fhir.params import (
    GROUP,
    PATIENT,
    STRICT,
    SYSTEM,
    V2,
    V4,
    pairs_from_parameters,
    parse_prefer,
)
from bulkops.fhir_http import FHIR_NDJSON, absolute_url, empty_response, fhir_endpoint, fhir_json
from exports import manifest_pages as pages
from exports.file_audit import DOWNLOAD, record_file_read
from exports.kickoff import plan_export
from exports.manifests import job_manifest
from exports.models import ExportFile, ExportJob
from exports.polling import counted_poll, failed_export
from exports.services import delete_export, start_export
from exports.status_v4 import v4_status
from exports.storage import job_storage

ACCEPTABLE = ("application/fhir+json", "application/json", "*/*")
DOWNLOAD_CHUNK = 256 * 1024


@fhir_endpoint
@require_http_methods(["GET", "POST"])
@require_bearer
def system_export(request: HttpRequest) -> HttpResponse:
    return kick_off(request, level=SYSTEM)


@fhir_endpoint
@require_http_methods(["GET", "POST"])
@require_bearer
def patient_export(request: HttpRequest) -> HttpResponse:
    return kick_off(request, level=PATIENT)


@fhir_endpoint
@require_http_methods(["GET", "POST"])
@require_bearer
def group_export(request: HttpRequest, group_id: str) -> HttpResponse:
    return kick_off(request, level=GROUP, group_id=group_id)


@fhir_endpoint
@require_POST
@require_bearer
def system_export_v4(request: HttpRequest) -> HttpResponse:
    """Bulk Data 4 (v4 digest §1.1): POST with a Parameters body only."""
    return kick_off(request, level=SYSTEM, version=V4)


@fhir_endpoint
@require_POST
@require_bearer
def patient_export_v4(request: HttpRequest) -> HttpResponse:
    return kick_off(request, level=PATIENT, version=V4)


@fhir_endpoint
@require_POST
@require_bearer
def group_export_v4(request: HttpRequest, group_id: str) -> HttpResponse:
    return kick_off(request, level=GROUP, group_id=group_id, version=V4)


def kick_off(
    request: HttpRequest, *, level: str, group_id: str = "", version: str = V2
) -> HttpResponse:
    """Start an export; `version` V4 is `$export-v4` (exports/export_v4_views.py),
    whose only differences here are its parameter forms and `separate-export-status`."""
    now = timezone.now()
    accept = request.headers.get("Accept", "")
    if accept and not any(kind in accept for kind in ACCEPTABLE):
        raise FhirError(400, f"Accept must be application/fhir+json, not {accept!r}.")
    prefer = parse_prefer(request.headers.get("Prefer", ""))
    operation = "$export-v4" if version == V4 else "$export"
    if not prefer.respond_async:
        raise FhirError(400, f"{operation} runs asynchronously: send 'Prefer: respond-async'.")
    plan = plan_export(
        client=request.client,
        level=level,
        group_id=group_id,
        pairs=request_pairs(request, version=version, handling=prefer.handling),
        handling=prefer.handling,
        now=now,
        method=request.method or "GET",
        access=request.read_access,
        base_url=absolute_url(request, "/fhir"),
        version=version,
    )
    separate = version == V4 and prefer.separate_export_status
    job = start_export(
        client=request.client,
        level=level,
        group_id=group_id,
        parameters=plan.parameters,
        type_plan=plan.type_plan,
        request_url=kickoff_url(request),
        now=now,
        request=request,
        bulk_version=version,
        separate_status=separate,
    )
    status_url = absolute_url(request, f"/fhir/bulkstatus/{job.uuid}")
    outcome = operation_outcome(
        Issue("information", INFORMATIONAL, f"Export accepted; poll {status_url}."),
        *(Issue("warning", INFORMATIONAL, text) for text in job.warnings),
    )
    headers = {"Content-Location": status_url}
    if separate:
        headers["Preference-Applied"] = "respond-async, separate-export-status"
    return fhir_json(outcome, status=202, headers=headers)


def request_pairs(
    request: HttpRequest, *, version: str = V2, handling: str = STRICT
) -> list[tuple[str, str]]:
    if request.method == "GET":
        return [(name, value) for name, values in request.GET.lists() for value in values]
    if not request.body:
        return []
    try:
        body: Any = untrusted_json.loads(request.body)
    except ValueError as error:
        raise FhirError(400, f"The POST body is not valid JSON: {error}.") from None
    return pairs_from_parameters(body, version=version, handling=handling)


def kickoff_url(request: HttpRequest) -> str:
    """The manifest's `request`: the full GET URL, or the POST URL without a body."""
    path = request.get_full_path() if request.method == "GET" else request.path
    return absolute_url(request, path)


def job_for_client(request: HttpRequest, job_id: str) -> ExportJob:
    # get(), not first(): one row by a unique key needs no ORDER BY, and a status poll
    # is the request a waiting client repeats most.
    try:
        return ExportJob.objects.for_client(request.client).get(uuid=job_id)
    except ExportJob.DoesNotExist:
        raise FhirError(404, "No such export job.", code=NOT_FOUND) from None


@fhir_endpoint
@require_http_methods(["GET", "DELETE"])
@require_bearer
def export_status(request: HttpRequest, job_id: str) -> HttpResponse:
    job = job_for_client(request, job_id)
    now = timezone.now()
    if request.method == "DELETE":
        delete_export(
            job=job,
            actor_type=AuditEvent.ActorType.CLIENT,
            actor=request.client.client_id,
            now=now,
            request=request,
        )
        outcome = operation_outcome(Issue("information", INFORMATIONAL, "Export deleted."))
        return fhir_json(outcome, status=202)
    if job.bulk_version == V4:
        return v4_status(request, job, now)
    if job.status == ExportJob.Status.FAILED:
        raise failed_export(job)
    if job.status == ExportJob.Status.COMPLETED:
        return manifest_response(request, job)
    poll = counted_poll(job, now)
    return empty_response(
        202, {"X-Progress": job.progress_text, "Retry-After": str(poll.retry_after)}
    )


@fhir_endpoint
@require_GET
@require_bearer
def manifest_page(request: HttpRequest, job_id: str, number: int) -> HttpResponse:
    """A later page of a v4 partial manifest (exports/manifest_pages.py), always 200:
    the job's status is the status URL's to tell (v4 digest §6.4, README)."""
    job = job_for_client(request, job_id)
    page = None
    if job.bulk_version == V4 and job.parameters.get("allowPartialManifests"):
        page = pages.page_manifest(job, number, lambda path: absolute_url(request, path))
    if page is None:
        raise FhirError(404, f"This export has no manifest page {number}.", code=NOT_FOUND)
    return fhir_json(page.manifest, content_type="application/json")


def manifest_response(request: HttpRequest, job: ExportJob) -> HttpResponse:
    """The manifest with `Expires` no later than its URLs or files (spec §2.3)."""
    signed = job_manifest(job, lambda path: absolute_url(request, path))
    expires = signed.expires_at
    headers = {"Expires": http_date(expires.timestamp())} if expires else {}
    return fhir_json(signed.manifest, content_type="application/json", headers=headers)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@fhir_endpoint
@require_GET
@require_bearer
def export_file(request: HttpRequest, file_id: str) -> HttpResponse:
    """Stream one NDJSON file to the job's client: Range requests, or gzip on request.

    In S3 mode the file is in the bucket: redirect to a presigned URL instead."""
    file = (
        ExportFile.objects.select_related("job")
        .filter(uuid=file_id, job__client=request.client, job__deleted_at__isnull=True)
        .first()
    )
    if file is None:
        raise FhirError(404, "No such file.", code=NOT_FOUND)
    record_file_read(request, file, action=DOWNLOAD, client=request.client)
    storage = job_storage(file.job)
    if not storage.requires_access_token:
        # Interop notes: check the token here, then hand over a fresh presigned URL;
        # clients drop the Authorization header on a cross-origin redirect.
        signed = storage.signed_url(
            file.storage_key, now=timezone.now(), not_after=file.job.expires_at
        )
        return empty_response(302, location=signed.url)
    size = file.size_bytes
    byte_range = parse_range(request.headers.get("Range", ""), size)
    handle = storage.open_reader(file.storage_key)
    if byte_range is not None:
        start, end = byte_range
        handle.seek(start)
        response = StreamingHttpResponse(
            read_chunks(handle, end - start + 1), status=206, content_type=FHIR_NDJSON
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    elif "gzip" in request.headers.get("Accept-Encoding", ""):
        response = StreamingHttpResponse(gzip_chunks(handle), content_type=FHIR_NDJSON)
        response["Content-Encoding"] = "gzip"
    else:
        response = StreamingHttpResponse(read_chunks(handle, size), content_type=FHIR_NDJSON)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    response["Vary"] = "Accept-Encoding"
    return response


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One `bytes=a-b` range (inclusive), or None for the whole file; 416 if unsatisfiable."""
    match = _RANGE.match(header.strip())
    if not match or (not match[1] and not match[2]):
        return None
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:
        start, end = max(0, size - int(match[2])), size - 1
    if start > end or start >= size:
        raise FhirError(
            416,
            f"Range {header!r} is outside the file ({size} bytes).",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


def read_chunks(handle: BinaryIO, length: int) -> Iterator[bytes]:
    with handle:
        while length > 0:
            data = handle.read(min(DOWNLOAD_CHUNK, length))
            if not data:
                return
            length -= len(data)
            yield data


def gzip_chunks(handle: BinaryIO) -> Iterator[bytes]:
    """Compress while streaming: memory stays at one chunk whatever the file size."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip container
    with handle:
        while data := handle.read(DOWNLOAD_CHUNK):
            if compressed := compressor.compress(data):
                yield compressed
    yield compressor.flush()
