"""The server's CapabilityStatement (spec §6): what /fhir/metadata answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bulkops.fhir.search.criteria import supported_modifiers
from bulkops.fhir.search.definitions import SUPPORTED_TYPES, search_parameters

BULK_DATA_CAPABILITY = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
BULK_DATA_IG = "http://hl7.org/fhir/uv/bulkdata/ImplementationGuide/hl7.fhir.uv.bulkdata"
OPERATION_DEFINITIONS = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
# The three export operations are all named "export" (spec §6, FHIR-34235).
TYPE_OPERATIONS = {
    "Patient": {"name": "export", "definition": f"{OPERATION_DEFINITIONS}/patient-export"},
    "Group": {"name": "export", "definition": f"{OPERATION_DEFINITIONS}/group-export"},
}
EXPORT_DOCUMENTATION = (
    "Parameters: _outputFormat (application/fhir+ndjson, application/ndjson, ndjson); "
    "_since; _until (Bulk Data 3.0 ballot: resources last updated at or before it); "
    "_type; _elements (top-level elements); patient (POST, Patient and Group level); "
    "_typeFilter: FHIR R4 searches on one type each, OR-ed for a type, with the token, "
    "string, date, reference, quantity, number and uri parameters listed under each "
    "resource's searchParam (including _id, _lastUpdated, _profile, _tag, _security and "
    "_source), comma-separated values OR-ed, and the modifiers :missing, :not, :text, "
    ":exact, :contains, :below, :above and :[type]. Chained, reverse-chained, composite "
    "and result parameters (_include, _revinclude, _sort, _count, _elements, _summary) "
    "are refused, or ignored with a warning under Prefer: handling=lenient. "
    "includeAssociatedData is not supported."
)
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SMART_SERVICE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
            "display": "SMART-on-FHIR",
        }
    ],
    "text": "OAuth2 using SMART Backend Services (client credentials, signed JWT assertion)",
}


def capability_statement(
    *, stored_types: list[str], token_url: str, software_version: str, now: datetime
) -> dict[str, Any]:
    """A server CapabilityStatement for FHIR 4.0.1 instantiating the Bulk Data IG one.

    Every stored type can be read; Group can also be searched (list), which Bulk Data
    clients use to find a group to export (spec §6). Each type lists the search
    parameters its `_typeFilter` filters may use (as the Bulk Data 3.0 ballot asks);
    they work in `$export` only, which each one's documentation says.
    """
    resources = []
    for resource_type in sorted(set(stored_types) | set(TYPE_OPERATIONS)):
        interactions = [{"code": "read"}]
        if resource_type == "Group":
            interactions.append({"code": "search-type"})
        resource: dict[str, Any] = {"type": resource_type, "interaction": interactions}
        if search_params := type_filter_parameters(resource_type):
            resource["searchParam"] = search_params
        if resource_type in TYPE_OPERATIONS:
            resource["operation"] = [
                {**TYPE_OPERATIONS[resource_type], "documentation": EXPORT_DOCUMENTATION}
            ]
        resources.append(resource)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now.date().isoformat(),
        "kind": "instance",
        "instantiates": [BULK_DATA_CAPABILITY],
        "implementationGuide": [BULK_DATA_IG],
        "software": {"name": "bulkops", "version": software_version},
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": OAUTH_URIS,
                            "extension": [{"url": "token", "valueUri": token_url}],
                        }
                    ],
                    "service": [SMART_SERVICE],
                },
                "resource": resources,
                "operation": [
                    {
                        "name": "export",
                        "definition": f"{OPERATION_DEFINITIONS}/export",
                        "documentation": EXPORT_DOCUMENTATION,
                    }
                ],
            }
        ],
    }


def type_filter_parameters(resource_type: str) -> list[dict[str, str]]:
    """The search parameters of `resource_type` a `_typeFilter` may use, as
    CapabilityStatement.rest.resource.searchParam entries."""
    entries = []
    for code, parameter in sorted(search_parameters(resource_type).items()):
        if parameter.type not in SUPPORTED_TYPES or not parameter.paths:
            continue
        modifiers = supported_modifiers(parameter.type)
        entries.append(
            {
                "name": code,
                "definition": parameter.url,
                "type": parameter.type,
                "documentation": "In $export _typeFilter only (no REST search); modifiers "
                + ", ".join(f":{m}" for m in modifiers)
                + ".",
            }
        )
    return entries
