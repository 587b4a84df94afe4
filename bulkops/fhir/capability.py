"""The server's CapabilityStatement (spec §6): what /fhir/metadata answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

BULK_DATA_CAPABILITY = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
BULK_DATA_IG = "http://hl7.org/fhir/uv/bulkdata/ImplementationGuide/hl7.fhir.uv.bulkdata"
OPERATION_DEFINITIONS = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
# The three export operations are all named "export" (spec §6, FHIR-34235).
TYPE_OPERATIONS = {
    "Patient": {"name": "export", "definition": f"{OPERATION_DEFINITIONS}/patient-export"},
    "Group": {"name": "export", "definition": f"{OPERATION_DEFINITIONS}/group-export"},
}
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
    clients use to find a group to export (spec §6).
    """
    resources = []
    for resource_type in sorted(set(stored_types) | set(TYPE_OPERATIONS)):
        interactions = [{"code": "read"}]
        if resource_type == "Group":
            interactions.append({"code": "search-type"})
        resource: dict[str, Any] = {"type": resource_type, "interaction": interactions}
        if resource_type in TYPE_OPERATIONS:
            resource["operation"] = [TYPE_OPERATIONS[resource_type]]
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
                "operation": [{"name": "export", "definition": f"{OPERATION_DEFINITIONS}/export"}],
            }
        ],
    }
