"""The store's routes under /fhir/: metadata, discovery, bulkops' OperationDefinitions,
search and read; bulkops/urls.py joins them after the `$export` routes, and the last
one answers every other /fhir/ path with a 404 OperationOutcome."""

from __future__ import annotations

from django.urls import path, re_path

import bulkops.fhir_paths  # noqa: F401 - registers the fhir_type and fhir_id path converters
from accounts import token_views
from fhirstore import cohort_api, fhir_views, search_views

urlpatterns = [
    path("metadata", fhir_views.metadata, name="metadata"),
    # Discovery needs no token (spec §7.1); the document is the same as at the root.
    path(
        ".well-known/smart-configuration",
        token_views.smart_configuration,
        name="smart-configuration",
    ),
    # bulkops' own $export definitions; before the generic read, which needs a token.
    path(
        "OperationDefinition",
        fhir_views.operation_definition_list,
        name="operation-definition-list",
    ),
    path(
        "OperationDefinition/<fhir_id:definition_id>",
        fhir_views.operation_definition_read,
        name="operation-definition",
    ),
    # The Bulk Cohort API: POST creates a cohort Group, GET searches as for any type.
    path("Group", cohort_api.group_type, name="group-type"),
    path("cohortstatus/<uuid:request_id>", cohort_api.cohort_status, name="cohort-status"),
    path("Group/<fhir_id:resource_id>", fhir_views.group_read, name="group-read"),
    path("<fhir_type:resource_type>", search_views.search, name="search"),
    path("<fhir_type:resource_type>/_search", search_views.search_post, name="search-post"),
    path("<fhir_type:resource_type>/<fhir_id:resource_id>", fhir_views.read, name="read"),
    re_path(r"^(?P<path>.*)$", fhir_views.not_found, name="not-found"),
]
