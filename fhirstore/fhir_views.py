"""FHIR read surface: /fhir/metadata, bulkops' OperationDefinitions, /fhir/{type}/{id}
and Group/{id}, and the 404 for every other /fhir/ path (searches: search_views.py).

Stored bodies are sent byte for byte. Everything but metadata and the OperationDefinitions (protocol
facts, not data) needs a bearer token; what it may read is decided by fhirstore/access.py
alone: the types its scopes cover (spec §7.8) and, for a client bound to groups, only
what an export of those groups would give it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.http import http_date
from django.views.decorators.http import require_GET

from accounts.bearer import require_bearer
from accounts.token_views import token_endpoint_url
from bulkops.fhir.capability import capability_statement
from bulkops.fhir.formats import is_json_format
from bulkops.fhir.operation_definitions import (
    OPERATIONS_BY_ID,
    definitions_bundle,
    operation_definition,
)
from bulkops.fhir.outcome import DELETED, NOT_FOUND, NOT_SUPPORTED, FhirError
from bulkops.fhir.resource_types import is_resource_type
from bulkops.fhir_http import absolute_url, fhir_endpoint, fhir_json
from fhirstore.access import readable_resource
from fhirstore.models import Resource


def check_format(request: HttpRequest) -> None:
    """A 406 unless the client accepts JSON: bulkops serves no XML."""
    if not is_json_format(request.GET.get("_format")):
        raise FhirError(406, "only JSON is supported (_format=json)", code=NOT_SUPPORTED)


@fhir_endpoint
@require_GET
def metadata(request: HttpRequest) -> HttpResponse:
    check_format(request)
    statement = capability_statement(
        stored_types=Resource.objects.stored_types(),
        token_url=token_endpoint_url(request),
        fhir_base=absolute_url(request, "/fhir"),
        software_version="0.1.0",
        now=timezone.now(),
    )
    return fhir_json(statement)


@fhir_endpoint
@require_GET
def operation_definition_read(request: HttpRequest, definition_id: str) -> HttpResponse:
    """One of bulkops' own $export definitions; no token, like metadata. Stored
    OperationDefinition resources are not served here (they are exported)."""
    check_format(request)
    operation = OPERATIONS_BY_ID.get(definition_id)
    if operation is None:
        raise FhirError(
            404,
            f"OperationDefinition/{definition_id} is not one of bulkops' definitions "
            f"({', '.join(OPERATIONS_BY_ID)}).",
            code=NOT_FOUND,
        )
    return fhir_json(operation_definition(operation, fhir_base=absolute_url(request, "/fhir")))


@fhir_endpoint
@require_GET
def operation_definition_list(request: HttpRequest) -> HttpResponse:
    """Search-type on OperationDefinition: all of bulkops' definitions. It takes no
    search parameter, so one given is refused rather than silently ignored."""
    check_format(request)
    given = sorted(set(request.GET) - {"_format"})
    if given:
        raise FhirError(
            400,
            f"OperationDefinition search takes no parameters; got {', '.join(given)}.",
            code=NOT_SUPPORTED,
        )
    return fhir_json(definitions_bundle(fhir_base=absolute_url(request, "/fhir")))


def _read(request: HttpRequest, resource_type: str, resource_id: str) -> HttpResponse:
    check_format(request)
    if not is_resource_type(resource_type):
        raise FhirError(404, f"unknown resource type {resource_type}", code=NOT_FOUND)
    row = readable_resource(request, resource_type, resource_id)
    if row.deleted:
        raise FhirError(410, f"{resource_type}/{resource_id} was deleted", code=DELETED)
    return fhir_json(
        row.body,
        headers={
            "ETag": f'W/"{row.version_id}"',
            "Last-Modified": http_date(row.last_updated.timestamp()),
        },
    )


@fhir_endpoint
@require_GET
@require_bearer
def read(request: HttpRequest, resource_type: str, resource_id: str) -> HttpResponse:
    return _read(request, resource_type, resource_id)


@fhir_endpoint
@require_GET
@require_bearer
def group_read(request: HttpRequest, resource_id: str) -> HttpResponse:
    return _read(request, "Group", resource_id)


@fhir_endpoint
def not_found(request: HttpRequest, path: str) -> HttpResponse:
    """Every /fhir/ path no route serves: a FHIR client gets an OperationOutcome it can
    read, never Django's HTML page."""
    raise FhirError(
        404,
        f"bulkops serves no {request.method} /fhir/{path}: see /fhir/metadata for the "
        "interactions it supports.",
        code=NOT_FOUND,
    )
