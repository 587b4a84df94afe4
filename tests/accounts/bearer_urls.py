"""A test-only FHIR read, protected the real way, for the bearer-token tests."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import include, path

from accounts.bearer import FhirRequest, require_bearer, require_read
from bulkops.fhir_http import fhir_endpoint, fhir_json


@fhir_endpoint
@require_bearer
def read_resource(request: FhirRequest, resource_type: str, resource_id: str) -> HttpResponse:
    require_read(request, resource_type)
    return fhir_json(
        {
            "resourceType": resource_type,
            "id": resource_id,
            "meta": {"source": request.client.client_id},
            "scopes": request.token_scopes,
        }
    )


# The real site too, so tests get their tokens from the real /auth/token.
urlpatterns = [
    path("fhir/<str:resource_type>/<str:resource_id>", read_resource),
    path("", include("bulkops.urls")),
]
