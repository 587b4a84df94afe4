"""The server's CapabilityStatement (spec §6): what /fhir/metadata answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bulkops.fhir.cohort import COHORT_PROFILE
from bulkops.fhir.operation_definitions import (
    EXPORT_OPERATIONS,
    OPERATION_DEFINITION,
    OPERATIONS_BY_LEVEL,
    ExportOperation,
    parameter_names,
)
from bulkops.fhir.params import SYSTEM
from bulkops.fhir.search.criteria import supported_modifiers
from bulkops.fhir.search.definitions import SUPPORTED_TYPES, search_parameters
from bulkops.fhir.search.rest import SEARCH_PAGE_MAX, SUMMARY_VALUES, TOTAL_VALUES

BULK_DATA_CAPABILITY = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
BULK_DATA_IG = "http://hl7.org/fhir/uv/bulkdata/ImplementationGuide/hl7.fhir.uv.bulkdata"
# The types $export is invoked on (Patient/$export, Group/{id}/$export).
TYPE_OPERATIONS = {op.resource_type: op for op in EXPORT_OPERATIONS if op.resource_type}
# What a search-type interaction on a stored type takes besides its search parameters.
SEARCH_DOCUMENTATION = (
    f"Search (GET [type]?... or POST [type]/_search): _count (at most {SEARCH_PAGE_MAX}), "
    f"_elements, _summary={'|'.join(SUMMARY_VALUES)}, _total={'|'.join(TOTAL_VALUES)}; "
    "pages follow the Bundle's next link. _include, _revinclude, _sort, chains and "
    "unknown parameters are ignored with a warning entry, or refused under "
    "Prefer: handling=strict."
)
# Bulk Data 4.0.0-ballot runs beside 2.0.0 under its own operation name, as the IG's
# export page shows two versions side by side (v4 digest §0 "Running both versions").
EXPORT_V4 = "export-v4"
BULK_DATA_V4 = "4.0.0"
# How bulkops settles the points the 4.0.0 ballot leaves open (v4 digest §6); README's
# "Bulk Data 4" section says the same.
EXPORT_V4_CHOICES = (
    "Bulk Data 4.0.0-ballot export: POST with a Parameters body only, one value per "
    "parameter (a comma in _type or _elements is refused unless Prefer: handling=lenient), "
    "_typeFilter values never split. Choices where the ballot is open: "
    "_until keeps resources last updated at or before it, so _since < lastUpdated <= "
    "_until; an _until not after _since is refused; an _until later than transactionTime "
    "changes nothing (transactionTime stays the kick-off time); deleted lists the "
    "deletions inside the same window; a resource changed or deleted after _until is in "
    "neither (only latest versions are exported). "
    "Partial manifests (allowPartialManifests=true): the status URL answers 202 with page "
    "1 while the export runs, then 200 with page 1 once every page exists; later pages "
    "answer 200 at their link, and the chain ends at the page without a link. "
    "includeAssociatedData takes Codings of the IG's code system; custom '_' codes use "
    "the system urn:bulkops:include-associated-data (bulkops supports none of either "
    "yet). _minimumFileSize and _maximumFileSize are not offered (the export "
    "OperationDefinitions do not list them). Manifests are the ballot's BulkDataManifest "
    "(manifestType says so), with bulkops' extensions urn:bulkops:manifest:typeFilter and "
    "urn:bulkops:manifest:until; the operation-not-supported extension is not emitted. "
    "Prefer: separate-export-status is supported. organizeOutputBy=Patient writes patient "
    "blocks of the Patient compartment (resources outside every compartment are left "
    "out; count includes the header lines); other types are refused."
)
COHORT_DOCUMENTATION = (
    "Bulk Cohort API: POST a bulk-cohort-group Group with Prefer: respond-async and a token "
    "granting system/Group.c and read access to Patient and every filtered type; poll the "
    "Content-Location for a batch-response Bundle. member-filter takes one "
    "application/x-fhir-query per extension, on Patient or a Patient compartment type, with "
    "the search parameters listed under each type here; filters are AND-ed, and one bulkops "
    "cannot evaluate is refused with 400. Members are computed once, when the Group is "
    "built; members-refreshed says when. Only type person is supported."
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
    *,
    stored_types: list[str],
    token_url: str,
    fhir_base: str,
    software_version: str,
    now: datetime,
) -> dict[str, Any]:
    """A server CapabilityStatement for FHIR 4.0.1 instantiating the Bulk Data IG one.

    Every stored type can be read and searched, Group included (Bulk Data clients
    list groups to export, spec §6). Each type lists the search parameters the search
    engine evaluates, which REST search and `_typeFilter` share: clients look for
    `_lastUpdated` there before asking for incremental data. OperationDefinition's
    search lists bulkops' own $export definitions and takes no parameter. The export
    operations name the IG's definitions, and their documentation points to bulkops'
    own (`fhir_base`/OperationDefinition/...), which say what bulkops accepts.
    """
    resources = []
    types = set(stored_types) | set(TYPE_OPERATIONS) | {OPERATION_DEFINITION}
    for resource_type in sorted(types):
        interactions = [{"code": "read"}, {"code": "search-type"}]
        resource: dict[str, Any] = {"type": resource_type, "interaction": interactions}
        if resource_type == OPERATION_DEFINITION:
            resource["documentation"] = (
                "bulkops' own $export definitions, readable and listed without a token "
                "(the search takes no parameter); stored OperationDefinition resources are "
                "exported, not read here."
            )
        elif search_params := search_parameters_of(resource_type):
            resource["documentation"] = SEARCH_DOCUMENTATION
            resource["searchParam"] = search_params
        if resource_type == "Group":
            # The Bulk Cohort API (v4 digest §5): asynchronous create of cohort Groups.
            interactions.append({"code": "create", "documentation": COHORT_DOCUMENTATION})
            resource["supportedProfile"] = [COHORT_PROFILE]
        if resource_type in TYPE_OPERATIONS:
            operation = TYPE_OPERATIONS[resource_type]
            resource["operation"] = [operation_entry(operation, fhir_base), v4_entry(operation)]
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
                    operation_entry(OPERATIONS_BY_LEVEL[SYSTEM], fhir_base),
                    v4_entry(OPERATIONS_BY_LEVEL[SYSTEM]),
                ],
            }
        ],
    }


def operation_entry(operation: ExportOperation, fhir_base: str) -> dict[str, str]:
    """An `operation` entry naming the IG's definition, as clients and test kits expect
    (all three are named "export": spec §6, FHIR-34235), with the parameters bulkops
    accepts at that level and where its own definition says how."""
    return {
        "name": "export",
        "definition": operation.base,
        "documentation": f"bulkops accepts {', '.join(parameter_names(operation.level))}. "
        f"What each takes, and what is refused, is in bulkops' own OperationDefinition "
        f"{operation.url(fhir_base)}, based on this one.",
    }


def v4_entry(operation: ExportOperation) -> dict[str, str]:
    """The `export-v4` entry beside `export`: the IG's 4.0.0 definition at that level."""
    return {
        "name": EXPORT_V4,
        "definition": f"{operation.base}|{BULK_DATA_V4}",
        "documentation": EXPORT_V4_CHOICES,
    }


def search_parameters_of(resource_type: str) -> list[dict[str, str]]:
    """The search parameters of `resource_type` bulkops evaluates, in REST search and
    in `_typeFilter` alike, as CapabilityStatement.rest.resource.searchParam entries."""
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
                "documentation": "In search and in $export _typeFilter; modifiers "
                + ", ".join(f":{m}" for m in modifiers)
                + ".",
            }
        )
    return entries
