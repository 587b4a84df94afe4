"""Partial manifests (v4 `allowPartialManifests`, digest §1.8): frozen pages of files.

While a job runs, each status poll that finds finished files not yet listed puts them
on a new page, numbered after the last. A page never changes once it exists (its files
are those of finished partitions, which nothing rewrites, and the row says which page
holds each), so what a client was shown stays true; only the `link` to the next page
appears once that page exists. The status URL answers with page 1; the others are at
`/fhir/bulkstatus/<job>/page/<n>`. At completion the remaining files, the warnings
file among them, make the last page.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.db.models import Max

from exports.manifests import SignedManifest, job_manifest_v4
from exports.models import ExportFile, ExportJob

# What a running job can list: files of finished partitions. Its warnings file is
# written when the job completes.
READY_WHILE_RUNNING = (ExportFile.Kind.OUTPUT, ExportFile.Kind.DELETED)


def freeze_ready_files(job: ExportJob) -> None:
    """Put the job's ready files that no page lists on a new page."""
    completed = job.status == ExportJob.Status.COMPLETED
    kinds = ExportFile.Kind.values if completed else READY_WHILE_RUNNING
    with transaction.atomic():
        # The job row lock serialises two polls, so a page number is taken once.
        ExportJob.objects.select_for_update().filter(pk=job.pk).first()
        unlisted = job.files.filter(manifest_page__isnull=True, kind__in=kinds)
        if unlisted.exists():
            unlisted.update(manifest_page=last_page(job) + 1)


def last_page(job: ExportJob) -> int:
    return job.files.aggregate(last=Max("manifest_page"))["last"] or 0


def page_url(job: ExportJob, number: int) -> str:
    return f"/fhir/bulkstatus/{job.uuid}/page/{number}"


def page_manifest(
    job: ExportJob, number: int, url_for: Callable[[str], str]
) -> SignedManifest | None:
    """Page `number` with a `link` to the next one if it exists; None past the last.
    A completed job that had no file has one empty page."""
    last = last_page(job)
    if number < 1 or number > max(last, 1 if job.status == ExportJob.Status.COMPLETED else 0):
        return None
    next_url = url_for(page_url(job, number + 1)) if number < last else ""
    return job_manifest_v4(
        job, url_for, files=job.files.filter(manifest_page=number), next_url=next_url
    )
