"""`$bulk-submit`, `$bulk-submit-status`, its status URL and outcome files (spec digest
§3). Every endpoint needs the `system/bulk-submit` scope (§3.2, checklist 7.B 23)."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.bearer import FhirRequest, require_bearer
from bulkops import untrusted_json
from bulkops.fhir.outcome import (
    FORBIDDEN,
    INFORMATIONAL,
    NOT_FOUND,
    FhirError,
    Issue,
    operation_outcome,
)
from bulkops.fhir.scopes import BULK_SUBMIT
from bulkops.fhir.submit import parse_status_request, parse_submit
from bulkops.fhir_http import FHIR_NDJSON, absolute_url, empty_response, fhir_endpoint, fhir_json
from submissions.models import Submission, SubmittedFile, SubmittedManifest
from submissions.services import is_complete, receive_submission
from submissions.status import file_issue, manifest_issue, status_manifest

RETRY_AFTER = "2"


def _require_submit_scope(request: FhirRequest) -> None:
    if BULK_SUBMIT not in request.token_scopes:
        raise FhirError(
            403, f"This endpoint needs a token with the {BULK_SUBMIT} scope.", code=FORBIDDEN
        )


def _body(request: HttpRequest) -> Any:
    try:
        return untrusted_json.loads(request.body or b"null")
    except json.JSONDecodeError as error:
        raise FhirError(400, f"The body is not valid JSON: {error}.") from None


@fhir_endpoint
@require_POST
@require_bearer
def bulk_submit(request: FhirRequest) -> HttpResponse:
    """Spec §3.1: answered 200 (not 202); the fetching happens in Celery tasks."""
    _require_submit_scope(request)
    submit = parse_submit(_body(request))
    receive_submission(client=request.client, submit=submit, request=request, now=timezone.now())
    issue = Issue("information", INFORMATIONAL, f"Submission {submit.submission_id} accepted.")
    return fhir_json(operation_outcome(issue))


@fhir_endpoint
@require_POST
@require_bearer
def bulk_submit_status_kickoff(request: FhirRequest) -> HttpResponse:
    _require_submit_scope(request)
    asked = parse_status_request(_body(request))
    if asked.submitter != request.client.client_id:
        raise FhirError(404, "No such submission.", code=NOT_FOUND)
    submission = _submission(request, submission_id=asked.submission_id)
    path = reverse("fhir:bulk-submit-status", args=[submission.uuid])
    return empty_response(202, {"Content-Location": absolute_url(request, path)})


def _submission(request: FhirRequest, **lookup: Any) -> Submission:
    try:
        return Submission.objects.get(client=request.client, **lookup)
    except Submission.DoesNotExist:
        raise FhirError(404, "No such submission.", code=NOT_FOUND) from None


@fhir_endpoint
@require_GET
@require_bearer
def bulk_submit_status(request: FhirRequest, submission_uuid: str) -> HttpResponse:
    _require_submit_scope(request)
    submission = _submission(request, uuid=submission_uuid)
    if not is_complete(submission):
        return empty_response(
            202, {"X-Progress": _progress(submission), "Retry-After": RETRY_AFTER}
        )
    manifest = status_manifest(
        submission,
        request_url=absolute_url(request, reverse("fhir:bulk-submit-status-kickoff")),
        url_for=lambda item: absolute_url(
            request, reverse("fhir:bulk-submit-outcome", args=[submission.uuid, item])
        ),
        now=timezone.now(),
    )
    return fhir_json(manifest, content_type="application/json")


def _progress(submission: Submission) -> str:
    files = SubmittedFile.objects.filter(manifest__submission=submission)
    done = files.filter(status__in=SubmittedFile.FINISHED).count()
    return f"{submission.status}: {done} of {files.count()} files processed"


@fhir_endpoint
@require_GET
@require_bearer
def bulk_submit_outcome(request: FhirRequest, submission_uuid: str, item_uuid: str) -> HttpResponse:
    """One status item's OperationOutcome, as a one-line NDJSON file."""
    _require_submit_scope(request)
    submission = _submission(request, uuid=submission_uuid)
    file = SubmittedFile.objects.filter(manifest__submission=submission, uuid=item_uuid).first()
    manifest = submission.manifests.filter(uuid=item_uuid).first()
    if file is not None:
        issue = file_issue(file)
    elif manifest is not None and manifest.status == SubmittedManifest.Status.FAILED:
        issue = manifest_issue(manifest)
    else:
        raise FhirError(404, "No such outcome file.", code=NOT_FOUND)
    line = json.dumps(operation_outcome(issue), separators=(",", ":")) + "\n"
    return HttpResponse(line, content_type=FHIR_NDJSON)
