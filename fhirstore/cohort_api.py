"""The Bulk Cohort API under /fhir/ (v4 digest §5, §7.D): `POST /fhir/Group` with
`Prefer: respond-async` creates a `bulk-cohort-group` Group asynchronously; its status
URL answers 202 until the Group exists, then a batch-response Bundle.

Who may: a token that may create Groups (`system/Group.c`, v1 `system/Group.write`)
and read Patient and every type a filter searches, so a cohort never tells a client
which patients have data it may not read; and a client not bound to groups, since a
bound client reads nothing outside its groups' patients (fhirstore/access.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.bearer import FhirRequest, require_bearer, require_read
from bulkops import untrusted_json
from bulkops.fhir import resource_json
from bulkops.fhir.cohort import CohortError, parse_cohort_create
from bulkops.fhir.outcome import (
    FORBIDDEN,
    INFORMATIONAL,
    NOT_FOUND,
    PROCESSING,
    FhirError,
    Issue,
    operation_outcome,
)
from bulkops.fhir.params import parse_prefer
from bulkops.fhir.scopes import may_create
from bulkops.fhir_http import absolute_url, empty_response, fhir_endpoint, fhir_json
from fhirstore import search_views
from fhirstore.access import bound_group_ids
from fhirstore.cohort_requests import accept_cohort_request, batch_response
from fhirstore.models import CohortRequest, Resource

# A cohort whose build failed is final, as a failed export's status is (424, processing).
FAILED_STATUS = 424


@csrf_exempt
def group_type(request: HttpRequest) -> HttpResponse:
    """`/fhir/Group`: GET searches Groups as any type; POST creates a cohort Group."""
    if request.method == "POST":
        return group_create(request)
    return search_views.search(request, resource_type="Group")


@fhir_endpoint
@require_POST
@require_bearer
def group_create(request: FhirRequest) -> HttpResponse:
    if not parse_prefer(request.headers.get("Prefer", "")).respond_async:
        raise FhirError(
            400, "Cohort Groups are created asynchronously: send 'Prefer: respond-async'."
        )
    check_may_create(request)
    try:
        body: Any = untrusted_json.loads(request.body)
    except ValueError as error:
        raise FhirError(400, f"The body is not valid JSON: {error}.") from None
    try:
        create = parse_cohort_create(
            body, now=timezone.now(), base_url=absolute_url(request, "/fhir")
        )
    except CohortError as error:
        raise FhirError(400, str(error)) from None
    for resource_type in {"Patient", *(search.resource_type for search in create.searches)}:
        require_read(request, resource_type)
    cohort = accept_cohort_request(client=request.client, create=create, request=request)
    status_url = absolute_url(request, f"/fhir/cohortstatus/{cohort.uuid}")
    outcome = operation_outcome(
        Issue("information", INFORMATIONAL, f"Accepted; poll {status_url}.")
    )
    return fhir_json(outcome, status=202, headers={"Content-Location": status_url})


def check_may_create(request: FhirRequest) -> None:
    if not may_create(request.token_scopes, "Group"):
        raise FhirError(
            403,
            "This token may not create Groups: it needs system/Group.c (or system/Group.write).",
            code=FORBIDDEN,
        )
    if bound_group_ids(request.client):
        raise FhirError(
            403, "A client bound to groups cannot create cohort Groups.", code=FORBIDDEN
        )


@fhir_endpoint
@require_GET
@require_bearer
def cohort_status(request: FhirRequest, request_id: str) -> HttpResponse:
    cohort = CohortRequest.objects.filter(uuid=request_id, client=request.client).first()
    if cohort is None:
        raise FhirError(404, "No such cohort request.", code=NOT_FOUND)
    if cohort.status == CohortRequest.Status.FAILED:
        raise FhirError(FAILED_STATUS, cohort.failure_reason, code=PROCESSING)
    if cohort.status == CohortRequest.Status.ACCEPTED:
        return empty_response(202, {"Retry-After": str(settings.BULKOPS_RETRY_AFTER)})
    group = (
        Resource.objects.live().filter(resource_type="Group", resource_id=cohort.group_id).first()
    )
    if group is None:
        raise FhirError(404, f"Group/{cohort.group_id} has been deleted.", code=NOT_FOUND)
    return fhir_json(batch_response(cohort, resource_json.loads(group.body)))
