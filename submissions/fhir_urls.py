"""The Bulk Submit routes under /fhir/; bulkops/urls.py puts them before the store's."""

from __future__ import annotations

from django.urls import path

from submissions import fhir_views

urlpatterns = [
    path("$bulk-submit", fhir_views.bulk_submit, name="bulk-submit"),
    path(
        "$bulk-submit-status",
        fhir_views.bulk_submit_status_kickoff,
        name="bulk-submit-status-kickoff",
    ),
    path(
        "bulksubmitstatus/<uuid:submission_uuid>",
        fhir_views.bulk_submit_status,
        name="bulk-submit-status",
    ),
    path(
        "bulksubmitstatus/<uuid:submission_uuid>/outcome/<uuid:item_uuid>",
        fhir_views.bulk_submit_outcome,
        name="bulk-submit-outcome",
    ),
]
