"""The `$export` routes under /fhir/ and the status and file URLs they hand out;
bulkops/urls.py joins them with the store's read routes into the "fhir" namespace."""

from __future__ import annotations

from django.urls import path

import bulkops.fhir_paths  # noqa: F401 - registers the fhir_id path converter
from exports import export_views

urlpatterns = [
    path("$export", export_views.system_export, name="export"),
    path("Patient/$export", export_views.patient_export, name="patient-export"),
    path("Group/<fhir_id:group_id>/$export", export_views.group_export, name="group-export"),
    path("$export-v4", export_views.system_export_v4, name="export-v4"),
    path("Patient/$export-v4", export_views.patient_export_v4, name="patient-export-v4"),
    path(
        "Group/<fhir_id:group_id>/$export-v4",
        export_views.group_export_v4,
        name="group-export-v4",
    ),
    path("bulkstatus/<uuid:job_id>", export_views.export_status, name="export-status"),
    path(
        "bulkstatus/<uuid:job_id>/page/<int:number>",
        export_views.manifest_page,
        name="export-manifest-page",
    ),
    path("bulkfiles/<uuid:file_id>", export_views.export_file, name="export-file"),
]
