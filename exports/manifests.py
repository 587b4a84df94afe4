"""A finished job's manifest, built from its files: the status endpoint returns it and
the console shows it, so both always agree."""

from __future__ import annotations

from collections.abc import Callable

from bulkops.fhir.manifest import Manifest, ManifestItem, build_manifest
from exports.models import ExportFile, ExportJob
from exports.storage import get_storage


def job_manifest(job: ExportJob, url_for: Callable[[str], str]) -> Manifest:
    """The manifest of `job`; `url_for` turns a server path into an absolute URL."""
    items: dict[str, list[ManifestItem]] = {kind: [] for kind in ExportFile.Kind.values}
    for file in job.files.order_by("resource_type", "storage_key"):
        items[file.kind].append(
            {
                "type": file.resource_type,
                "url": url_for(f"/fhir/bulkfiles/{file.uuid}"),
                "count": file.resource_count,
            }
        )
    return build_manifest(
        transaction_time=job.transaction_time,
        request_url=job.request_url,
        requires_access_token=get_storage().requires_access_token,
        output=items[ExportFile.Kind.OUTPUT],
        deleted=items[ExportFile.Kind.DELETED],
        error=items[ExportFile.Kind.ERROR],
    )
