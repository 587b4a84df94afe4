"""The `$bulk-submit-status` manifest (spec digest §3.4): one `outcome` item per file and
per manifest that could not be read, each naming its `manifestUrl`, and the
OperationOutcome file each item's `url` serves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bulkops.fhir.outcome import EXCEPTION, INFORMATIONAL, NOT_FOUND, PROCESSING, Issue
from fhirstore.writes import fhir_instant
from submissions.models import Submission, SubmittedFile, SubmittedManifest

MANIFEST_TYPE = "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/BulkSubmitStatusManifest"


def status_manifest(
    submission: Submission, *, request_url: str, url_for: Callable[[str], str], now: datetime
) -> dict[str, Any]:
    """`url_for(item uuid)` is the absolute URL of one item's OperationOutcome file."""
    outcome = []
    for manifest in submission.manifests.all():
        if manifest.status == SubmittedManifest.Status.FAILED:
            outcome.append(_item(manifest.url, url_for(str(manifest.uuid)), "error"))
        for file in manifest.files.all():
            severity = "error" if file.status == SubmittedFile.Status.FAILED else "information"
            outcome.append(_item(manifest.url, url_for(str(file.uuid)), severity))
    return {
        "manifestType": MANIFEST_TYPE,
        "transactionTime": fhir_instant(now),
        "request": request_url,
        "requiresAccessToken": True,
        "submissionId": submission.submission_id,
        "output": [],
        "outcome": outcome,
    }


def _item(manifest_url: str, url: str, severity: str) -> dict[str, Any]:
    return {
        "type": "OperationOutcome",
        "url": url,
        "manifestUrl": manifest_url,
        "count": 1,
        "countSeverity": [{"code": severity, "count": 1}],
    }


def manifest_issue(manifest: SubmittedManifest) -> Issue:
    return Issue("error", NOT_FOUND, f"The manifest {manifest.url} was not read: {manifest.error}")


def file_issue(file: SubmittedFile) -> Issue:
    """What became of one file, in words for the submitter."""
    if file.status == SubmittedFile.Status.LOADED:
        return Issue(
            "information",
            INFORMATIONAL,
            f"Loaded {file.resource_count} {file.resource_type} resources from {file.url}.",
        )
    if file.status == SubmittedFile.Status.PURGED:
        why = file.error or "loaded, then deleted: its manifest was replaced or withdrawn"
        return Issue("information", INFORMATIONAL, f"{file.url}: {why}.")
    if file.status == SubmittedFile.Status.FAILED:
        return Issue("error", PROCESSING, f"{file.url} was not loaded: {file.error}.")
    return Issue("information", EXCEPTION, f"{file.url} is still being processed.")
