"""Export files written straight to storage, for tests of what the console shows of them."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from accounts.services import register_client
from exports.models import ExportFile, ExportJob
from exports.storage import get_storage


def finished_job(rsa_key: Any) -> ExportJob:
    """A completed system export of a registered client, with no files yet."""
    client = register_client(name="Lab", jwks=rsa_key.jwks(), scopes="system/*.read")
    return ExportJob.objects.create(
        client=client,
        level="system",
        request_url="x",
        status=ExportJob.Status.COMPLETED,
        transaction_time=timezone.now(),
    )


def write_file(job: ExportJob, kind: str, resource_type: str, lines: list[bytes]) -> ExportFile:
    """One file of `job` holding `lines`, in the configured storage."""
    file = ExportFile.objects.create(
        job=job,
        kind=kind,
        resource_type=resource_type,
        storage_key=f"{job.uuid}/{resource_type}.{kind}.ndjson",
        resource_count=len(lines),
        size_bytes=sum(map(len, lines)),
    )
    with get_storage().open_writer(file.storage_key) as writer:
        writer.write(b"".join(lines))
    return file
