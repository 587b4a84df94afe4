"""A finished job's manifest, built from its files: the status endpoint returns it and
the console shows it, so both always agree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from bulkops.fhir.manifest import Manifest, ManifestItem, build_manifest
from bulkops.fhir.manifest_v4 import ManifestFile, Organization, build_manifest_v4
from bulkops.fhir.params import V4
from bulkops.fhir.patient_blocks import PATIENT_BLOCKS
from exports.models import ExportFile, ExportJob
from exports.storage import job_storage


@dataclass(frozen=True)
class SignedManifest:
    manifest: Manifest | dict[str, Any]  # a 2.0.0 manifest, or a v4 one
    expires_at: datetime | None  # the earliest of the files' and the URLs' expiry


def job_manifest(job: ExportJob, url_for: Callable[[str], str]) -> SignedManifest:
    """The manifest of `job`; `url_for` turns a server path into an absolute URL.

    With token-checked storage the URLs are ours; otherwise (S3) they are presigned
    afresh on every call, so a late reader still gets working URLs, and the returned
    expiry is no later than the first URL or the files expire.
    """
    signer = FileSigner(job, url_for)
    items: dict[str, list[ManifestItem]] = {kind: [] for kind in ExportFile.Kind.values}
    for file in job.files.order_by("resource_type", "storage_key"):
        items[file.kind].append(
            {"type": file.resource_type, "url": signer.url(file), "count": file.resource_count}
        )
    manifest = build_manifest(
        transaction_time=job.transaction_time,
        request_url=job.request_url,
        requires_access_token=signer.storage.requires_access_token,
        output=items[ExportFile.Kind.OUTPUT],
        deleted=items[ExportFile.Kind.DELETED],
        error=items[ExportFile.Kind.ERROR],
        type_filters=applied_type_filters(job),
        until=job_until(job),
    )
    return SignedManifest(manifest, signer.expires_at)


def job_manifest_v4(
    job: ExportJob,
    url_for: Callable[[str], str],
    files: QuerySet[ExportFile] | None = None,
    next_url: str = "",
) -> SignedManifest:
    """The Bulk Data 4 manifest of `job` (bulkops/fhir/manifest_v4.py): of all its
    files, or of `files` only, one page of a paged manifest linking `next_url`."""
    signer = FileSigner(job, url_for)
    chosen = job.files.all() if files is None else files
    continuations = continuation_urls(job, chosen, signer)
    items: dict[str, list[ManifestFile]] = {kind: [] for kind in ExportFile.Kind.values}
    for file in chosen.order_by("resource_type", "storage_key"):
        items[file.kind].append(
            ManifestFile(
                url=signer.url(file),
                count=file.resource_count,
                size=file.size_bytes,
                resource_type=file.resource_type,
                severity="warning" if file.kind == ExportFile.Kind.ERROR else "",
                continues_in=continuations.get(file.continues_in_key, ""),
            )
        )
    organized = job.parameters.get("organizeOutputBy")
    manifest = build_manifest_v4(
        transaction_time=job.transaction_time,
        requires_access_token=signer.storage.requires_access_token,
        output=items[ExportFile.Kind.OUTPUT],
        deleted=items[ExportFile.Kind.DELETED],
        outcome=items[ExportFile.Kind.ERROR],
        organized_by=Organization(organized, PATIENT_BLOCKS) if organized else None,
        type_filters=applied_type_filters(job),
        until=job_until(job),
        next_url=next_url,
    )
    return SignedManifest(manifest, signer.expires_at)


def continuation_urls(
    job: ExportJob, files: QuerySet[ExportFile], signer: FileSigner
) -> dict[str, str]:
    """The URL of each file that continues one of `files` (`continuesInFile`), by key."""
    keys = files.exclude(continues_in_key="").values_list("continues_in_key", flat=True)
    return {file.storage_key: signer.url(file) for file in job.files.filter(storage_key__in=keys)}


def manifest_as_served(job: ExportJob, url_for: Callable[[str], str]) -> SignedManifest:
    """The complete manifest in the form the job's client asked for ($export or
    $export-v4), whole even when the client reads it in pages: what the console shows."""
    return job_manifest_v4(job, url_for) if job.bulk_version == V4 else job_manifest(job, url_for)


class FileSigner:
    """The URL of each file of a job, and the earliest expiry of the job and the URLs."""

    def __init__(self, job: ExportJob, url_for: Callable[[str], str]) -> None:
        self.job, self.url_for = job, url_for
        self.storage = job_storage(job)
        self.now = timezone.now()
        self.expiries = [job.expires_at] if job.expires_at else []

    def url(self, file: ExportFile) -> str:
        if self.storage.requires_access_token:
            return self.url_for(f"/fhir/bulkfiles/{file.uuid}")
        signed = self.storage.signed_url(
            file.storage_key, now=self.now, not_after=self.job.expires_at
        )
        self.expiries.append(signed.expires_at)
        return signed.url

    @property
    def expires_at(self) -> datetime | None:
        return min(self.expiries) if self.expiries else None


def job_until(job: ExportJob) -> datetime | None:
    until = job.parameters.get("_until")
    return datetime.fromisoformat(until) if until else None


def applied_type_filters(job: ExportJob) -> list[str]:
    """The job's `_typeFilter` filters on types it exports (one on a type the scopes or
    the level dropped filtered nothing), as bulkops read them."""
    exported = set(job.types)
    return [
        text for text in job.parameters.get("_typeFilter", []) if text.partition("?")[0] in exported
    ]
