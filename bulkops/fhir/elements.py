"""`_elements` subsetting (spec §1.3): keep listed top-level elements plus mandatory ones.

A resource type that no `_elements` entry applies to is exported whole: the entries
restrict only the types they name (an untyped entry names every type). Subsetted
resources carry the SUBSETTED tag in meta.tag, as the spec asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bulkops.fhir.params import ElementSelection

SUBSETTED_TAG = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}

ALWAYS_KEPT = frozenset({"resourceType", "id", "meta"})

# Top-level elements with min >= 1 in the R4 (4.0.1) StructureDefinitions of the types
# bulkops commonly holds; `name[x]` is a choice element. Types not listed here have no
# mandatory top-level element beyond id/meta (e.g. Patient, Practitioner, Organization).
MANDATORY_ELEMENTS: dict[str, frozenset[str]] = {
    "Account": frozenset({"status"}),
    "AllergyIntolerance": frozenset({"patient"}),
    "Appointment": frozenset({"status", "participant"}),
    "Basic": frozenset({"code"}),
    "BodyStructure": frozenset({"patient"}),
    "CarePlan": frozenset({"status", "intent", "subject"}),
    "Claim": frozenset(
        {"status", "type", "use", "patient", "created", "provider", "priority", "insurance"}
    ),
    "Communication": frozenset({"status"}),
    "Composition": frozenset({"status", "type", "date", "author", "title"}),
    "Condition": frozenset({"subject"}),
    "Consent": frozenset({"status", "scope", "category"}),
    "Coverage": frozenset({"status", "beneficiary", "payor"}),
    "DeviceRequest": frozenset({"intent", "code[x]", "subject"}),
    "DiagnosticReport": frozenset({"status", "code"}),
    "DocumentReference": frozenset({"status", "content"}),
    "Encounter": frozenset({"status", "class"}),
    "EpisodeOfCare": frozenset({"status", "patient"}),
    "ExplanationOfBenefit": frozenset(
        {
            "status",
            "type",
            "use",
            "patient",
            "created",
            "insurer",
            "provider",
            "outcome",
            "insurance",
        }
    ),
    "FamilyMemberHistory": frozenset({"status", "patient", "relationship"}),
    "Flag": frozenset({"status", "code", "subject"}),
    "Goal": frozenset({"lifecycleStatus", "description", "subject"}),
    "Group": frozenset({"type", "actual"}),
    "ImagingStudy": frozenset({"status", "subject"}),
    "Immunization": frozenset({"status", "vaccineCode", "patient", "occurrence[x]"}),
    "Invoice": frozenset({"status"}),
    "List": frozenset({"status", "mode"}),
    "Media": frozenset({"status", "content"}),
    "MedicationAdministration": frozenset({"status", "medication[x]", "subject", "effective[x]"}),
    "MedicationDispense": frozenset({"status", "medication[x]"}),
    "MedicationRequest": frozenset({"status", "intent", "medication[x]", "subject"}),
    "MedicationStatement": frozenset({"status", "medication[x]", "subject"}),
    "NutritionOrder": frozenset({"status", "intent", "patient", "dateTime"}),
    "Observation": frozenset({"status", "code"}),
    "Procedure": frozenset({"status", "subject"}),
    "Provenance": frozenset({"target", "recorded", "agent"}),
    "QuestionnaireResponse": frozenset({"status"}),
    "RelatedPerson": frozenset({"patient"}),
    "RiskAssessment": frozenset({"status", "subject"}),
    "ServiceRequest": frozenset({"status", "intent", "subject"}),
    "SupplyRequest": frozenset({"item[x]", "quantity"}),
}


def selected_elements(
    selections: Iterable[ElementSelection], resource_type: str
) -> frozenset[str] | None:
    """Elements listed for `resource_type`, or None when no entry applies to it."""
    names = {s.element for s in selections if s.resource_type in (None, resource_type)}
    return frozenset(names) if names else None


# Type suffixes of R4 choice elements (value[x] -> valueQuantity, ...).
CHOICE_TYPES = frozenset(
    """
    Address Age Annotation Attachment Base64Binary Boolean Canonical Code CodeableConcept
    Coding ContactPoint Count Date DateTime Decimal Distance Duration Expression HumanName
    Id Identifier Instant Integer Markdown Money Oid Period PositiveInt Quantity Range
    Ratio Reference SampledData Signature String Time Timing UnsignedInt Uri Url Uuid
    """.split()
)


def _kept(key: str, names: frozenset[str]) -> bool:
    """`value` or `value[x]` also keeps valueQuantity etc.; `status` never statusReason."""
    if key in names:
        return True
    for name in names:
        base = name.removesuffix("[x]")
        if key.startswith(base) and key[len(base) :] in CHOICE_TYPES:
            return True
    return False


def subset_resource(resource: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """Keep `names`, mandatory elements and id/meta; tag the result SUBSETTED."""
    keep = names | ALWAYS_KEPT | MANDATORY_ELEMENTS.get(resource.get("resourceType", ""), set())
    subset = {key: value for key, value in resource.items() if _kept(key, frozenset(keep))}
    meta = dict(subset.get("meta") or {})
    tags = [tag for tag in meta.get("tag", []) if tag.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED_TAG]
    subset["meta"] = meta
    return subset
