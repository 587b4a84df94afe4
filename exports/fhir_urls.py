"""URLs under /fhir/: the FHIR bulk API."""

from django.urls import path

from exports import export_views

app_name = "fhir"

urlpatterns = [
    path("$export", export_views.system_export, name="export"),
    path("Patient/$export", export_views.patient_export, name="patient-export"),
    path("Group/<str:group_id>/$export", export_views.group_export, name="group-export"),
    path("bulkstatus/<uuid:job_id>", export_views.export_status, name="export-status"),
    path("bulkfiles/<uuid:file_id>", export_views.export_file, name="export-file"),
]
