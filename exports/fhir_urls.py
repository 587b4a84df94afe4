"""URLs under /fhir/: the FHIR bulk API."""

from __future__ import annotations

from django.urls import path, register_converter

from accounts import token_views
from exports import export_views, fhir_views


class ResourceTypeConverter:
    regex = "[A-Z][A-Za-z]{1,63}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class FhirIdConverter(ResourceTypeConverter):
    # http://hl7.org/fhir/R4/datatypes.html#id: `$export` and friends never match.
    regex = r"[A-Za-z0-9\-\.]{1,64}"


register_converter(ResourceTypeConverter, "fhir_type")
register_converter(FhirIdConverter, "fhir_id")

app_name = "fhir"

urlpatterns = [
    path("metadata", fhir_views.metadata, name="metadata"),
    # Discovery needs no token (spec §7.1); the document is the same as at the root.
    path(
        ".well-known/smart-configuration",
        token_views.smart_configuration,
        name="smart-configuration",
    ),
    path("$export", export_views.system_export, name="export"),
    path("Patient/$export", export_views.patient_export, name="patient-export"),
    path("Group/<fhir_id:group_id>/$export", export_views.group_export, name="group-export"),
    path("bulkstatus/<uuid:job_id>", export_views.export_status, name="export-status"),
    path("bulkfiles/<uuid:file_id>", export_views.export_file, name="export-file"),
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
    path("Group", fhir_views.group_list, name="group-list"),
    path("Group/<fhir_id:resource_id>", fhir_views.group_read, name="group-read"),
    path("<fhir_type:resource_type>/<fhir_id:resource_id>", fhir_views.read, name="read"),
]
