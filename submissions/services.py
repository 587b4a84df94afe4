"""Receiving a submission: registering each `$bulk-submit` request, fetching manifests,
loading files and purging what a stopped or replaced manifest loaded.

Concurrency: a file's load commits while it holds a share of the submission's row lock,
and a stop or replacement changes the status under the whole lock. So a load either
commits before the stop (and the purge that follows sees it) or sees the stop and writes
nothing, while the files of one submission load side by side, one per worker.
"""

from __future__ import annotations

import logging
import math
import tempfile
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest

from accounts.audit import record_event, record_system_event
from accounts.models import AuditEvent, BackendClient
from bulkops import outbound
from bulkops.fhir.outcome import FORBIDDEN, FhirError
from bulkops.fhir.resource_types import is_resource_type
from bulkops.fhir.submit import COMPLETED, STOPPED, SubmitRequest
from bulkops.task_queue import enqueue
from fhirstore.deadlocks import StillDeadlocked, run_again_after_deadlocks
from fhirstore.loaders import Declared, load_file
from fhirstore.writes import ResourceWrite, write_resources
from submissions import fetch, task_names
from submissions.models import Submission, SubmittedFile, SubmittedManifest

logger = logging.getLogger(__name__)

CONFLICT = "conflict"


def receive_submission(
    *, client: BackendClient, submit: SubmitRequest, request: HttpRequest | None, now: datetime
) -> Submission:
    """Apply one `$bulk-submit` request (spec §3.2, §3.3): a new manifest is queued for
    fetching, a replaced one is marked for purging, `stopped` purges the submission.
    `request` is None when bulkops submits to itself (a copy from a remote server).
    FhirError 403 when the submitter is not this client, 409 after `completed` or
    `stopped` and for a manifest URL the submission already has."""
    if submit.submitter != client.client_id:
        raise FhirError(
            403,
            "submitter must be the identifier bulkops assigned to this client: its client_id.",
            code=FORBIDDEN,
        )
    with transaction.atomic():
        submission = _locked_submission(client, submit.submission_id, now)
        if submission.status != Submission.Status.IN_PROGRESS:
            raise FhirError(
                409,
                f"Submission {submit.submission_id!r} is {submission.status}; no more requests "
                "are accepted for it.",
                code=CONFLICT,
            )
        replaced = _replaced_manifest(submission, submit.replaces_manifest_url)
        manifest = _add_manifest(submission, submit, replaced, now) if submit.manifest_url else None
        if replaced is not None and manifest is None:
            transaction.on_commit(
                lambda: enqueue(task_names.FETCH_MANIFEST, manifest_id=replaced.pk)
            )
        submission.status, submission.updated_at = submit.status, now
        submission.save(update_fields=["status", "updated_at"])
        _audit_request(client, submission, submit, request)
        if submit.status == STOPPED:
            transaction.on_commit(
                lambda: enqueue(task_names.PURGE_SUBMISSION, submission_id=submission.pk)
            )
    return submission


def _locked_submission(client: BackendClient, submission_id: str, now: datetime) -> Submission:
    try:
        with transaction.atomic():
            Submission.objects.get_or_create(
                client=client,
                submission_id=submission_id,
                defaults={"created_at": now, "updated_at": now},
            )
    except IntegrityError:
        pass  # created at the same moment by a concurrent request
    return Submission.objects.select_for_update().get(client=client, submission_id=submission_id)


def _replaced_manifest(submission: Submission, url: str) -> SubmittedManifest | None:
    if not url:
        return None
    replaced = submission.manifests.filter(url=url).exclude(
        status=SubmittedManifest.Status.REPLACED
    )
    found = replaced.first()
    if found is None:
        raise FhirError(
            400, f"replacesManifestUrl {url} is not a current manifest of this submission."
        )
    found.status = SubmittedManifest.Status.REPLACED
    found.save(update_fields=["status"])
    return found


def _add_manifest(
    submission: Submission,
    submit: SubmitRequest,
    replaced: SubmittedManifest | None,
    now: datetime,
) -> SubmittedManifest:
    if submission.manifests.filter(url=submit.manifest_url).exists():
        raise FhirError(
            409, f"manifestUrl {submit.manifest_url} was already submitted.", code=CONFLICT
        )
    manifest = SubmittedManifest.objects.create(
        submission=submission,
        url=submit.manifest_url,
        fhir_base_url=submit.fhir_base_url,
        file_headers=[list(pair) for pair in submit.file_headers],
        replaces=replaced,
        created_at=now,
    )
    transaction.on_commit(lambda: enqueue(task_names.FETCH_MANIFEST, manifest_id=manifest.pk))
    return manifest


def _audit_request(
    client: BackendClient,
    submission: Submission,
    submit: SubmitRequest,
    request: HttpRequest | None,
) -> None:
    # Header names only: their values may be the submitter's credentials.
    record_event(
        actor_type=AuditEvent.ActorType.CLIENT,
        actor=client.client_id,
        action="submission.received",
        request=request,
        details={
            "submission": str(submission.uuid),
            "submission_id": submission.submission_id,
            "status": submit.status,
            "manifest_url": submit.manifest_url,
            "replaces_manifest_url": submit.replaces_manifest_url,
            "file_header_names": [name for name, _ in submit.file_headers],
        },
    )


def _audit(submission: Submission, action: str, *, failed: str = "", **details: Any) -> None:
    record_system_event(
        action,
        failed=failed,
        details={"submission": str(submission.uuid), "client": submission.client.client_id}
        | details,
    )


def fetch_manifest(*, manifest_id: int, now: datetime) -> None:
    """Purge what the manifest this one replaces loaded, then read this one (all its
    pages) and queue one load task per output file. A replacement without a manifest
    of its own is queued with the replaced manifest's id: it only purges."""
    manifest = SubmittedManifest.objects.select_related("submission__client").get(pk=manifest_id)
    submission = manifest.submission
    if manifest.status == SubmittedManifest.Status.REPLACED:
        purge_manifest(manifest, reason="replaced", now=now)
        return
    if manifest.replaces is not None:
        purge_manifest(manifest.replaces, reason="replaced", now=now)
    if manifest.status != SubmittedManifest.Status.QUEUED or submission.status == STOPPED:
        return
    try:
        pages = fetch.manifest_pages(manifest.url, dict(manifest.file_headers))
        items = [item for page in pages for item in fetch.output_items(page, manifest.url)]
        unknown = sorted({i.resource_type for i in items if not is_resource_type(i.resource_type)})
        if unknown:
            raise outbound.FetchError(f"unknown resource types in output: {', '.join(unknown)}")
    except outbound.FetchError as error:
        manifest.status, manifest.error = SubmittedManifest.Status.FAILED, str(error)
        manifest.save(update_fields=["status", "error"])
        _audit(
            submission,
            "submission.manifest_fetched",
            failed=str(error)[:255],
            manifest=manifest.url,
        )
        return
    with transaction.atomic():
        files = SubmittedFile.objects.bulk_create(
            SubmittedFile(manifest=manifest, url=item.url, resource_type=item.resource_type)
            for item in items
        )
        manifest.status = SubmittedManifest.Status.FETCHED
        manifest.save(update_fields=["status"])
        _audit(submission, "submission.manifest_fetched", manifest=manifest.url, files=len(files))
        for file in _largest_first(files, items):
            transaction.on_commit(lambda pk=file.pk: enqueue(task_names.LOAD_FILE, file_id=pk))


def _largest_first(
    files: list[SubmittedFile], items: list[fetch.OutputItem]
) -> list[SubmittedFile]:
    """The files (one per item, in the manifest's order) in the order their loads are
    queued: the largest first, so that the workers finish together rather than one
    loading the largest file alone at the end (a file is one task). Sizes are the counts
    the manifest gives; a file without one may be the largest and goes first."""
    sizes = [math.inf if item.count is None else item.count for item in items]
    ordered = sorted(zip(files, sizes, strict=True), key=lambda pair: -pair[1])
    return [file for file, _ in ordered]


def load_submitted_file(*, file_id: int, now: datetime) -> None:
    """Download one output file and load it in one transaction, every line of the file's
    declared type (fhirstore.loaders.load_file). Idempotent: only a queued file is
    claimed."""
    claimed = SubmittedFile.objects.filter(pk=file_id, status=SubmittedFile.Status.QUEUED).update(
        status=SubmittedFile.Status.LOADING
    )
    if claimed != 1:
        return
    file = SubmittedFile.objects.select_related("manifest__submission__client").get(pk=file_id)
    if _withdrawn(file):
        _finish(
            file, SubmittedFile.Status.PURGED, now, error="not loaded: withdrawn by the submitter"
        )
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{file.uuid}.ndjson"
        try:
            fetch.download(file.url, dict(file.manifest.file_headers), path)
        except outbound.FetchError as error:
            _finish(file, SubmittedFile.Status.FAILED, now, error=str(error))
            return
        _load(file, path, now)


def _load(file: SubmittedFile, path: Path, now: datetime) -> None:
    """Load the file in a transaction that PostgreSQL may fail to break a deadlock with
    another load writing some of the same resources: it is then run again."""
    try:
        run_again_after_deadlocks(partial(_load_in_transaction, file, path, now))
    except StillDeadlocked as error:
        _finish(file, SubmittedFile.Status.FAILED, now, error=f"not loaded: {error}")


def _load_in_transaction(file: SubmittedFile, path: Path, now: datetime) -> None:
    with transaction.atomic():
        _share_lock(file.manifest.submission_id)
        file.manifest.refresh_from_db(fields=["status"])
        file.manifest.submission.refresh_from_db(fields=["status"])
        if _withdrawn(file):
            _finish(
                file,
                SubmittedFile.Status.PURGED,
                now,
                error="not loaded: withdrawn by the submitter",
            )
            return
        declared = Declared(file.resource_type)
        report = load_file(path, now=now, declared=declared)
        if report.error:
            _finish(file, SubmittedFile.Status.FAILED, now, error=report.error)
            return
        # What a purge may delete: only resources this file created. One that existed
        # before keeps the submitted version (the store keeps no earlier one to restore).
        file.loaded_keys = declared.new_keys
        _finish(file, SubmittedFile.Status.LOADED, now, count=report.resources)


def _share_lock(submission_pk: int) -> None:
    """Lock the submission's row against a stop or replacement (which take it whole, with
    select_for_update) but not against the loads of its other files. SQLite has no row
    locks: its one writer at a time keeps the same order."""
    if connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(Submission._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR SHARE", [submission_pk])  # noqa: S608 - our table name


def _withdrawn(file: SubmittedFile) -> bool:
    return (
        file.manifest.status == SubmittedManifest.Status.REPLACED
        or file.manifest.submission.status == STOPPED
    )


def _finish(
    file: SubmittedFile, status: str, now: datetime, *, error: str = "", count: int = 0
) -> None:
    file.status, file.error, file.resource_count, file.finished_at = status, error, count, now
    file.save(update_fields=["status", "error", "resource_count", "finished_at", "loaded_keys"])
    _audit(
        file.manifest.submission,
        "submission.file_loaded",
        failed=error[:255] if status == SubmittedFile.Status.FAILED else "",
        manifest=file.manifest.url,
        file=file.url,
        type=file.resource_type,
        status=status,
        count=count,
    )


def purge_manifest(manifest: SubmittedManifest, *, reason: str, now: datetime) -> int:
    """Delete every resource the manifest's loaded files created; how many. Resources
    that existed before the submission stay, with the version it wrote."""
    with transaction.atomic():
        Submission.objects.select_for_update().filter(pk=manifest.submission_id).first()
        files = list(manifest.files.filter(status=SubmittedFile.Status.LOADED))
        keys = dict.fromkeys(key for file in files for key in file.loaded_keys)
        writes = (ResourceWrite(*key.split("/", 1), None) for key in keys)
        deleted = write_resources(writes, now=now).deleted.total()
        manifest.files.filter(pk__in=[f.pk for f in files]).update(
            status=SubmittedFile.Status.PURGED, loaded_keys=[]
        )
        _audit(
            manifest.submission,
            "submission.purged",
            manifest=manifest.url,
            reason=reason,
            deleted=deleted,
        )
    return deleted


def purge_submission(*, submission_id: int, now: datetime) -> None:
    """A stopped submission (spec §3.3): delete all it loaded, and mark it purged."""
    submission = Submission.objects.select_related("client").get(pk=submission_id)
    for manifest in submission.manifests.all():
        purge_manifest(manifest, reason="stopped", now=now)
    submission.purged_at = now
    submission.save(update_fields=["purged_at"])


def is_complete(submission: Submission) -> bool:
    """Whether the final status manifest can be given (spec §3.1 step 5)."""
    if submission.status == STOPPED:
        return submission.purged_at is not None
    if submission.status != COMPLETED:
        return False
    pending_manifests = submission.manifests.filter(status=SubmittedManifest.Status.QUEUED)
    pending_files = SubmittedFile.objects.filter(
        manifest__submission=submission,
        status__in=[SubmittedFile.Status.QUEUED, SubmittedFile.Status.LOADING],
    )
    return not pending_manifests.exists() and not pending_files.exists()
