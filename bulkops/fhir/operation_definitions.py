"""bulkops' own OperationDefinitions for $export: what each level accepts, and how.

/fhir/metadata keeps naming the Bulk Data IG's canonical definitions, which test kits
and clients look for (spec §6). Each definition here is `base`d on one of them and lists
exactly the kick-off parameters the parser takes at its level
(`params.accepted_parameters`), documented from the constants the parser and the search
engine use, so what bulkops publishes cannot drift from what a kick-off does. They are
public protocol facts, served without a token like the CapabilityStatement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bulkops.fhir.elements import SUBSETTED_TAG
from bulkops.fhir.params import (
    GROUP,
    NDJSON,
    NDJSON_ALIASES,
    PARAMETER_ALIASES,
    PATIENT,
    SINGLE_PARAMETERS,
    SYSTEM,
    accepted_parameters,
)
from bulkops.fhir.referenced import REFERENCED_TYPES
from bulkops.fhir.search.criteria import (
    MAX_CRITERIA,
    MAX_VALUES,
    RESULT_PARAMETERS,
    supported_modifiers,
)
from bulkops.fhir.search.definitions import COMPOSITE, SPECIAL, SUPPORTED_TYPES
from bulkops.fhir.text import plain_list
from bulkops.fhir.type_filters import MAX_TYPE_FILTERS

BULK_DATA_DEFINITIONS = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
OPERATION_DEFINITION = "OperationDefinition"
LENIENT = "Prefer: handling=lenient"
ASYNC = (
    " Invoked with the FHIR asynchronous request pattern: GET (query string) or POST (a "
    "Parameters body) with Prefer: respond-async, then the status URL is polled."
)


@dataclass(frozen=True)
class ExportOperation:
    """$export at one level, invoked on `resource_type` (None: the system level)."""

    level: str
    resource_type: str | None
    description: str

    @property
    def base_id(self) -> str:
        """The Bulk Data IG's id: export, patient-export or group-export."""
        return f"{self.resource_type.lower()}-export" if self.resource_type else "export"

    @property
    def base(self) -> str:
        """The Bulk Data canonical this definition is based on."""
        return f"{BULK_DATA_DEFINITIONS}/{self.base_id}"

    @property
    def id(self) -> str:
        return f"bulkops-{self.base_id}"

    @property
    def name(self) -> str:
        """A computable name (R4 opd-0): BulkopsSystemExport..."""
        return f"Bulkops{(self.resource_type or SYSTEM).capitalize()}Export"

    @property
    def title(self) -> str:
        return f"bulkops {self.resource_type or SYSTEM}-level export"

    def url(self, fhir_base: str) -> str:
        """This definition's canonical: its absolute URL on this server."""
        return f"{fhir_base}/{OPERATION_DEFINITION}/{self.id}"


REFERENCED = (
    f" Added: the {plain_list(sorted(REFERENCED_TYPES))} resources the exported ones refer to "
    "(relative references, followed until none is new) and the patients' own Devices, once "
    "each, within the token's scopes and _type, and whatever their own lastUpdated: a _since "
    "export brings what its changes refer to, so every export is closed on its own. A "
    "_type naming only these types is refused."
)

EXPORT_OPERATIONS = (
    ExportOperation(
        SYSTEM,
        None,
        "Exports every resource type the token's scopes allow, or those _type names." + ASYNC,
    ),
    ExportOperation(
        PATIENT,
        "Patient",
        "Exports the Patient compartment of every patient, or of those the patient "
        "parameter names, and the resources outside it that they refer to." + REFERENCED + ASYNC,
    ),
    ExportOperation(
        GROUP,
        "Group",
        "Exports the Patient compartments of the group's active members, or of those the "
        "patient parameter names, never other Groups, and the resources outside them that "
        "they refer to." + REFERENCED + ASYNC,
    ),
)
OPERATIONS_BY_ID = {operation.id: operation for operation in EXPORT_OPERATIONS}
OPERATIONS_BY_LEVEL = {operation.level: operation for operation in EXPORT_OPERATIONS}


def _listed(items: list[str]) -> str:
    """`a`, `a or b`, `a, b or c`."""
    return " or ".join(filter(None, [", ".join(items[:-1]), items[-1]]))


def _output_format() -> str:
    others = _listed(sorted(NDJSON_ALIASES - {NDJSON}))
    return (
        f"{NDJSON}, the default, also written {others}. Any other format is refused with a "
        "400 OperationOutcome, whatever the handling."
    )


def _elements() -> str:
    return (
        "Top-level elements, 'element' or 'Type.element', comma-separated and/or repeated. "
        "An untyped entry applies to every type, and a type no entry applies to is exported "
        "whole. Mandatory elements are kept, and a subsetted resource carries the "
        f"{SUBSETTED_TAG['code']} tag ({SUBSETTED_TAG['system']}) in meta.tag. An entry that "
        "is not a top-level element, or names an unknown type, is refused (400), or ignored "
        f"with a warning under {LENIENT}."
    )


def _include_associated_data() -> str:
    aliases = _listed(
        [alias for alias, name in PARAMETER_ALIASES.items() if name == "includeAssociatedData"]
    )
    return (
        "Not supported yet: refused under strict handling (400), ignored with a warning "
        f"under {LENIENT}. Also read as {aliases}."
    )


def _type_filter() -> str:
    """What the search engine evaluates and refuses, from its own tables."""
    modifiers = "; ".join(
        f"{kind} ({', '.join(f':{m}' for m in supported_modifiers(kind))})"
        for kind in sorted(SUPPORTED_TYPES)
    )
    return (
        "FHIR R4 searches on one type each, Type?criteria, comma-joined and/or repeated: "
        "filters on one type are OR-ed, the criteria of one are AND-ed, comma-separated "
        "values are OR-ed, and a type without a filter is exported whole. Search parameter "
        f"types and their modifiers: {modifiers}. The parameters of each type are listed "
        "under rest.resource.searchParam in this server's CapabilityStatement "
        "([base]/metadata). Refused: result parameters "
        f"({', '.join(sorted(RESULT_PARAMETERS))}), chained (subject.name) and "
        f"reverse-chained (_has) parameters, {COMPOSITE} and {SPECIAL} parameters, "
        "parameters R4 defines without an expression (_text, _content), unknown parameters "
        "or modifiers, malformed values, and a filter on a type _type leaves out. At most "
        f"{MAX_TYPE_FILTERS} filters an export (more is a 400 whatever the handling), "
        f"{MAX_CRITERIA} criteria a filter and {MAX_VALUES:,} values a criterion. A refused "
        "filter is a 400 OperationOutcome naming it and the part that fails; under "
        f"{LENIENT} that filter alone is dropped and the same sentence is a warning in the "
        "manifest's error[]."
    )


# Type and documentation of every kick-off parameter, in the Bulk Data IG's order; a
# level lists those its `accepted_parameters` holds.
PARAMETER_DETAILS: dict[str, dict[str, Any]] = {
    "_outputFormat": {"type": "string", "documentation": _output_format()},
    "_since": {
        "type": "instant",
        "documentation": "A FHIR instant with a time zone (2024-01-31T12:00:00Z), not in "
        "the future: only resources last updated after it are exported, and those deleted "
        "since are listed in the manifest's deleted[]. Anything else is refused (400).",
    },
    "_until": {
        "type": "instant",
        "documentation": "From the Bulk Data 3.0 ballot: a FHIR instant with a time zone; "
        "only resources last updated at or before it are exported. It must be later than "
        "_since, and may lie in the future.",
    },
    "_type": {
        "type": "string",
        "documentation": "FHIR R4 resource types, comma-separated and/or repeated. The export "
        "holds these types that the token's scopes and this level allow; a type left out "
        "is named in a warning in the manifest's error[], and a kick-off left with no type "
        "is refused (403). An unknown type is refused (400), or ignored with a warning "
        f"under {LENIENT}.",
    },
    "_elements": {"type": "string", "documentation": _elements()},
    "patient": {
        "type": "Reference",
        "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Patient"],
        "documentation": "POST only, as a valueReference (Patient/123); a GET carrying it is "
        "refused (400). Only these patients' compartments are exported; each must exist "
        "and, in a Group export, be a member of the group, or the kick-off is refused (400).",
    },
    "includeAssociatedData": {
        "type": "code",
        "binding": {
            "strength": "extensible",
            "valueSet": "http://hl7.org/fhir/uv/bulkdata/ValueSet/include-associated-data",
        },
        "documentation": _include_associated_data(),
    },
    "_typeFilter": {"type": "string", "documentation": _type_filter()},
}


def parameter_names(level: str) -> list[str]:
    """The kick-off parameters `level` accepts, in the order its definition lists them."""
    accepted = accepted_parameters(level)
    return [name for name in PARAMETER_DETAILS if name in accepted]


def operation_definition(operation: ExportOperation, *, fhir_base: str) -> dict[str, Any]:
    """The R4 OperationDefinition of `operation`; `fhir_base` is this server's FHIR base
    URL, which the definition's canonical `url` starts with."""
    definition: dict[str, Any] = {
        "resourceType": OPERATION_DEFINITION,
        "id": operation.id,
        "url": operation.url(fhir_base),
        "name": operation.name,
        "title": operation.title,
        "status": "active",
        "kind": "operation",
        "description": operation.description,
        "code": "export",
        "base": operation.base,
    }
    if operation.resource_type:
        definition["resource"] = [operation.resource_type]
    definition |= {
        "system": operation.level == SYSTEM,
        "type": operation.level == PATIENT,
        "instance": operation.level == GROUP,
        "parameter": [
            {
                "name": name,
                "use": "in",
                "min": 0,
                "max": "1" if name in SINGLE_PARAMETERS else "*",
                **PARAMETER_DETAILS[name],
            }
            for name in parameter_names(operation.level)
        ],
    }
    return definition


def definitions_bundle(*, fhir_base: str) -> dict[str, Any]:
    """Search-type on OperationDefinition: a searchset Bundle of all three."""
    entries = [
        {
            "fullUrl": operation.url(fhir_base),
            "resource": operation_definition(operation, fhir_base=fhir_base),
            "search": {"mode": "match"},
        }
        for operation in EXPORT_OPERATIONS
    ]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries),
        "link": [{"relation": "self", "url": f"{fhir_base}/{OPERATION_DEFINITION}"}],
        "entry": entries,
    }
