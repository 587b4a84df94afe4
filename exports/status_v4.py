"""The status endpoint for `$export-v4` jobs (v4 digest §1.8, §1.9).

The same job, poll counting and files as a 2.0.0 job; what differs is the answer:
a v4 manifest, `Prefer: separate-export-status` (the HTTP status then speaks for the
poll, `X-Export-Status` for the job), and with `allowPartialManifests` the frozen pages
of exports/manifest_pages.py while the job runs.
"""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date

from bulkops.fhir_http import absolute_url, empty_response, fhir_json
from exports.manifest_pages import freeze_ready_files, page_manifest
from exports.manifests import SignedManifest, job_manifest_v4
from exports.models import ExportJob
from exports.polling import counted_poll, failed_export

MANIFEST_JSON = "application/json"


def v4_status(request: HttpRequest, job: ExportJob, now: datetime) -> HttpResponse:
    """Answer a poll of a v4 job: 202 while it runs (with page 1 of the partial
    manifest once there is one), its error when it failed, its manifest when done."""
    separate = job.separate_status
    if job.status == ExportJob.Status.FAILED:
        error = failed_export(job)
        if not separate:
            raise error
        return fhir_json(error.outcome(), headers={"X-Export-Status": status_text(error.status)})
    if job.status == ExportJob.Status.COMPLETED:
        signed = finished_manifest(request, job)
        headers = {"Expires": http_date(signed.expires_at.timestamp())} if signed.expires_at else {}
        if separate:
            headers["X-Export-Status"] = status_text(200)
        return fhir_json(signed.manifest, content_type=MANIFEST_JSON, headers=headers)
    poll = counted_poll(job, now)
    headers = {"X-Progress": job.progress_text, "Retry-After": str(poll.retry_after)}
    if separate:
        headers["X-Export-Status"] = status_text(202)
    status = 200 if separate else 202
    if job.parameters.get("allowPartialManifests"):
        freeze_ready_files(job)
        page = page_manifest(job, 1, lambda path: absolute_url(request, path))
        if page is not None:
            return fhir_json(
                page.manifest, status=status, content_type=MANIFEST_JSON, headers=headers
            )
    return empty_response(status, headers)


def finished_manifest(request: HttpRequest, job: ExportJob) -> SignedManifest:
    """The whole manifest, or with partial manifests its first page, the chain's start."""
    url_for = lambda path: absolute_url(request, path)  # noqa: E731
    if not job.parameters.get("allowPartialManifests"):
        return job_manifest_v4(job, url_for)
    freeze_ready_files(job)
    first = page_manifest(job, 1, url_for)
    assert first is not None  # a completed job has at least one page
    return first


def status_text(status: int) -> str:
    """`X-Export-Status` as the IG writes it: `202 Accepted`."""
    return f"{status} {HTTPStatus(status).phrase}"
