"""A finished job's manifest, built from its files: the status endpoint returns it and
the console shows it, so both always agree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from bulkops.fhir.manifest import Manifest, ManifestItem, build_manifest
from exports.models import ExportFile, ExportJob
from exports.storage import get_storage


@dataclass(frozen=True)
class SignedManifest:
    manifest: Manifest
    expires_at: datetime | None  # the earliest of the files' and the URLs' expiry


def job_manifest(job: ExportJob, url_for: Callable[[str], str]) -> SignedManifest:
    """The manifest of `job`; `url_for` turns a server path into an absolute URL.

    With token-checked storage the URLs are ours; otherwise (S3) they are presigned
    afresh on every call, so a late reader still gets working URLs, and the returned
    expiry is no later than the first URL or the files expire.
    """
    storage = get_storage()
    now = timezone.now()
    expiries = [job.expires_at] if job.expires_at else []
    items: dict[str, list[ManifestItem]] = {kind: [] for kind in ExportFile.Kind.values}
    for file in job.files.order_by("resource_type", "storage_key"):
        if storage.requires_access_token:
            url = url_for(f"/fhir/bulkfiles/{file.uuid}")
        else:
            signed = storage.signed_url(file.storage_key, now=now, not_after=job.expires_at)
            url = signed.url
            expiries.append(signed.expires_at)
        items[file.kind].append(
            {"type": file.resource_type, "url": url, "count": file.resource_count}
        )
    manifest = build_manifest(
        transaction_time=job.transaction_time,
        request_url=job.request_url,
        requires_access_token=storage.requires_access_token,
        output=items[ExportFile.Kind.OUTPUT],
        deleted=items[ExportFile.Kind.DELETED],
        error=items[ExportFile.Kind.ERROR],
        type_filters=applied_type_filters(job),
        until=datetime.fromisoformat(job.parameters["_until"])
        if job.parameters.get("_until")
        else None,
    )
    return SignedManifest(manifest, min(expiries) if expiries else None)


def applied_type_filters(job: ExportJob) -> list[str]:
    """The job's `_typeFilter` filters on types it exports (one on a type the scopes or
    the level dropped filtered nothing), as bulkops read them."""
    exported = set(job.types)
    return [
        text for text in job.parameters.get("_typeFilter", []) if text.partition("?")[0] in exported
    ]
